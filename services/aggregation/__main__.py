import sys

from services.aggregation.app import build_app
from services.aggregation.recompute import main
from services.aggregation.settings import AggregationSettings
from shared.runtime import serve

if sys.argv[1:2] == ["recompute"]:
    sys.exit(main(sys.argv[2:]))
settings = AggregationSettings()
serve(build_app(settings), settings, settings.aggregation.port)
