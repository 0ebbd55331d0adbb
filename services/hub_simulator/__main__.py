from services.hub_simulator.app import build_app
from services.hub_simulator.settings import HubSimulatorSettings
from shared.runtime import serve

settings = HubSimulatorSettings()
serve(build_app(settings), settings, settings.hub_simulator.port)
