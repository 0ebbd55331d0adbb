from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.settings import HubSettings, ServiceSettings


class ConnectorSection(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    port: int = 8004
    sync_levels: tuple[str, ...] = Field(
        default=("province",),
        description="Unit types whose snapshots are sent to the hub (province, district, ...).",
    )
    concurrency: int = Field(default=8, ge=1, le=64, description="Deliveries in flight at once.")
    backoff_base_s: float = Field(default=0.5, gt=0)
    backoff_cap_s: float = Field(default=60.0, gt=0)
    circuit_threshold: int = Field(
        default=5, ge=1, description="Consecutive hub failures that open the circuit."
    )
    circuit_cool_down_s: float = Field(default=5.0, gt=0)
    circuit_max_cool_down_s: float = Field(default=60.0, gt=0)
    lease_s: float = Field(default=60.0, gt=0, description="How long a claimed delivery is ours.")
    reconcile_interval_s: float = Field(default=300.0, gt=0)
    poll_interval_s: float = Field(default=1.0, gt=0)


class ConnectorSettings(ServiceSettings):
    hub: HubSettings = HubSettings()
    connector: ConnectorSection = ConnectorSection()
