from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from shared.settings import ServiceSettings


class ValidationSection(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    port: int = 8002


class ValidationSettings(ServiceSettings):
    validation: ValidationSection = ValidationSection()
