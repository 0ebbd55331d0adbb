from services.submission.app import build_app
from services.submission.settings import SubmissionSettings
from shared.runtime import serve

settings = SubmissionSettings()
serve(build_app(settings), settings.host, settings.submission.port)
