import sys

from services.submission.app import build_app
from services.submission.cli import main
from services.submission.settings import SubmissionSettings
from shared.runtime import serve

if sys.argv[1:]:  # an operator's command (see cli.py); without one, run the service
    sys.exit(main(sys.argv[1:]))
settings = SubmissionSettings()
serve(build_app(settings), settings, settings.submission.port)
