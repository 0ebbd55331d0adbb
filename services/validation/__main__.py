from services.validation.app import build_app
from services.validation.settings import ValidationSettings
from shared.runtime import serve

settings = ValidationSettings()
serve(build_app(settings), settings, settings.validation.port)
