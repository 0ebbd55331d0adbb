from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.settings import HubSettings, ServiceSettings


class Faults(BaseModel):
    """Fault knobs, settable at start (`BAOCAO_HUB_SIMULATOR__FAULTS__<KNOB>`) and at run
    time (`PUT /admin/faults`, which replaces them all)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    failure_rate: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Share of API requests answered 503."
    )
    throttle_rate: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Share of API requests answered 429."
    )
    latency_ms: int = Field(
        default=0, ge=0, le=60_000, description="Added to every API request (PUT, GET)."
    )
    outage_seconds: float = Field(
        default=0.0,
        ge=0.0,
        description="From now, answer every request 503 (token endpoint included) this long.",
    )
    retry_after_s: int = Field(default=1, ge=0, le=3600, description="Retry-After on 429/503.")
    token_ttl_s: int = Field(
        default=300,
        ge=1,
        description="Lifetime of access tokens; lowering it shortens tokens already issued.",
    )


class HubSimulatorSection(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    port: int = 8010
    faults: Faults = Faults()
    seed: int | None = Field(default=None, description="Seed of the random faults.")


class HubSimulatorSettings(ServiceSettings):
    hub: HubSettings = HubSettings()
    hub_simulator: HubSimulatorSection = HubSimulatorSection()
