from __future__ import annotations

from typing import Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from shared.settings import HubSettings, ServiceSettings


class Faults(BaseModel):
    """Fault knobs, settable at start (`BAOCAO_HUB_SIMULATOR__FAULTS__<KNOB>`) and at run
    time (`PUT /admin/faults` replaces them all, `PATCH` only those given). An outage is
    asked for as `outage_seconds` from now, or as the instant it ends (`outage_until`, as
    `GET /admin/faults` reports one in progress, so its answer can be sent back as is)."""

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
    outage_until: AwareDatetime | None = Field(
        default=None, description="Answer every request 503 until this instant."
    )
    retry_after_s: int = Field(default=1, ge=0, le=3600, description="Retry-After on 429/503.")
    token_ttl_s: int = Field(
        default=300,
        ge=1,
        description="Lifetime of access tokens; lowering it shortens tokens already issued.",
    )
    refuse_units: tuple[str, ...] = Field(
        default=(),
        description="Unit codes whose PUTs are answered 422 refused, valid body or not, "
        "as a hub that will not take a unit's snapshots (a JSON list in the environment).",
    )

    @model_validator(mode="after")
    def _one_outage(self) -> Self:
        if self.outage_seconds and self.outage_until is not None:
            raise ValueError("give outage_seconds or outage_until, not both")
        return self


class HubSimulatorSection(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    port: int = 8010
    faults: Faults = Faults()
    seed: int | None = Field(default=None, description="Seed of the random faults.")


class HubSimulatorSettings(ServiceSettings):
    hub: HubSettings = HubSettings()
    hub_simulator: HubSimulatorSection = HubSimulatorSection()
