from __future__ import annotations

import re
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import HubSettings, ServiceSettings

from .access import NAME


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

    operators: dict[str, SecretStr] = Field(
        default={},
        description="Who may call the operator endpoints (/v1/admin/...): each operator's "
        "name → the SHA-256 (hex) of their credential `<name>.<secret>`, from a Secret, as a "
        "JSON object in BAOCAO_CONNECTOR__OPERATORS or one variable per operator "
        "(BAOCAO_CONNECTOR__OPERATORS__<NAME>); `python -m services.connector "
        "operator-credential NAME` issues one. The audit log records actions under the "
        "name. Empty in the local run: the endpoints are open.",
    )

    @model_validator(mode="before")
    @classmethod
    def _former_single_digest(cls, data: Any) -> Any:
        # One digest for everybody could not say who acted: say what replaced it.
        if isinstance(data, dict) and "operator_credential_sha256" in data:
            raise ValueError(
                "operator_credential_sha256 is replaced by operators (name → digest): issue "
                "each operator a credential with `python -m services.connector "
                "operator-credential NAME` and set BAOCAO_CONNECTOR__OPERATORS"
            )
        return data

    @field_validator("operators")
    @classmethod
    def _named_hex_digests(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, digest in value.items():
            if not NAME.match(name):
                raise ValueError(f"operator name {name!r}: lowercase letters, digits, hyphens")
            if not re.fullmatch(r"[0-9a-f]{64}", digest.get_secret_value()):
                raise ValueError(
                    f"operator {name}: the SHA-256 of the credential, as 64 lowercase hex digits"
                )
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.backoff_cap_s < self.backoff_base_s:
            raise ValueError("backoff_cap_s must be at least backoff_base_s")
        if self.circuit_max_cool_down_s < self.circuit_cool_down_s:
            raise ValueError("circuit_max_cool_down_s must be at least circuit_cool_down_s")
        return self


class SenderAuthenticationSwitch(BaseModel):
    """The one switch of sender authentication, `BAOCAO_SUBMISSION__SENDER_AUTHENTICATION`
    (submission's setting), read here too: where senders must authenticate, so must the
    operators who can make the hub be sent snapshots again."""

    model_config = ConfigDict(frozen=True, extra="ignore")  # submission's other settings

    sender_authentication: bool = False


class ConnectorSettings(ServiceSettings):
    # A credential pasted where its digest belongs must not be shown in the start-up error
    # (merged with the base's configuration).
    model_config = SettingsConfigDict(hide_input_in_errors=True)

    hub: HubSettings = HubSettings()
    connector: ConnectorSection = ConnectorSection()
    submission: SenderAuthenticationSwitch = SenderAuthenticationSwitch()

    @model_validator(mode="after")
    def _operators_when_senders_authenticate(self) -> Self:
        if self.submission.sender_authentication and not self.connector.operators:
            raise ValueError(
                "sender authentication is on (BAOCAO_SUBMISSION__SENDER_AUTHENTICATION) but "
                "the connector has no operator: its operator endpoints would be open to "
                "anyone. Issue a credential with `python -m services.connector "
                "operator-credential NAME` and give the connector its digest "
                "(BAOCAO_CONNECTOR__OPERATORS)"
            )
        return self
