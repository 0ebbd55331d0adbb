from services.connector.app import build_app
from services.connector.settings import ConnectorSettings
from shared.runtime import serve

settings = ConnectorSettings()
serve(build_app(settings), settings, settings.connector.port)
