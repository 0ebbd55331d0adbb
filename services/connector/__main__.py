import sys

from services.connector.app import build_app
from services.connector.cli import main
from services.connector.settings import ConnectorSettings
from shared.runtime import serve

if sys.argv[1:]:  # an operator's command (see cli.py); without one, run the service
    sys.exit(main(sys.argv[1:]))
settings = ConnectorSettings()
serve(build_app(settings), settings, settings.connector.port)
