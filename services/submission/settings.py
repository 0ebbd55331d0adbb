from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.settings import ServiceSettings


class SubmissionSection(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    port: int = 8001
    max_report_bytes: int = Field(
        default=512 * 1024,
        ge=1024,
        description="Largest report accepted (E150 above), under Kafka's 1 MiB message limit.",
    )


class SubmissionSettings(ServiceSettings):
    submission: SubmissionSection = SubmissionSection()
