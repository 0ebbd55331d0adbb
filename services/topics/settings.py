from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.settings import ServiceSettings


class RetentionSection(BaseModel):
    """How long Kafka keeps records. PostgreSQL holds every report and verdict for good;
    Kafka's retention only has to outlast a consumer's downtime."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    events_days: int = Field(
        default=14,
        ge=1,
        description="Reports, verdicts and hub results: longer than the Tết holiday (up to "
        "9 days), so a consumer stopped over it loses nothing.",
    )
    dlq_days: int = Field(
        default=30, ge=1, description="Dead letters: time for an operator to inspect and replay."
    )


class TopicsSettings(ServiceSettings):
    topics: RetentionSection = RetentionSection()
