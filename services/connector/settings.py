from __future__ import annotations

import re
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import HubSettings, ServiceSettings


class ConnectorSection(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    port: int = 8004
    sync_levels: tuple[str, ...] = Field(
        default=("province",),
        min_length=1,
        description="Unit types whose snapshots are sent to the hub (province, district, ...); "
        "each must be a unit type of the catalog.",
    )
    concurrency: int = Field(default=8, ge=1, le=64, description="Deliveries in flight at once.")
    backoff_base_s: float = Field(
        default=0.5, gt=0, description="Ceiling of the first retry's delay (full jitter)."
    )
    backoff_cap_s: float = Field(
        default=60.0, gt=0, description="Largest delay between retries, unless Retry-After."
    )
    circuit_threshold: int = Field(
        default=5, ge=1, description="Consecutive hub failures that open the circuit."
    )
    circuit_cool_down_s: float = Field(
        default=5.0, gt=0, description="First wait before probing a hub that keeps failing."
    )
    circuit_max_cool_down_s: float = Field(
        default=60.0, gt=0, description="The wait doubles while probes fail, up to this."
    )
    reconcile_interval_s: float = Field(
        default=300.0, gt=0, description="How often what the hub holds is checked."
    )
    poll_interval_s: float = Field(
        default=1.0, gt=0, description="How often due retries are looked for when idle."
    )
    round_spacing_s: float = Field(
        default=0.5,
        ge=0,
        description="Shortest time from one delivery round to the next while new versions "
        "keep coming: a version superseded meanwhile is never sent, so the hub gets one "
        "request per scope and interval rather than one per aggregation batch.",
    )

    operator_credential_sha256: SecretStr | None = Field(
        default=None,
        description="SHA-256 (hex) of the operator credential that the operator endpoints "
        "(/v1/admin/...) need, from a Secret; `python -m services.connector "
        "operator-credential` issues one. Unset in the local run: the endpoints are open.",
    )

    @field_validator("operator_credential_sha256")
    @classmethod
    def _hex_digest(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"[0-9a-f]{64}", value.get_secret_value()):
            raise ValueError("the SHA-256 of the operator credential, as 64 lowercase hex digits")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.backoff_cap_s < self.backoff_base_s:
            raise ValueError("backoff_cap_s must be at least backoff_base_s")
        if self.circuit_max_cool_down_s < self.circuit_cool_down_s:
            raise ValueError("circuit_max_cool_down_s must be at least circuit_cool_down_s")
        return self


class ConnectorSettings(ServiceSettings):
    # A credential pasted where its digest belongs must not be shown in the start-up error
    # (merged with the base's configuration).
    model_config = SettingsConfigDict(hide_input_in_errors=True)

    hub: HubSettings = HubSettings()
    connector: ConnectorSection = ConnectorSection()
