from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from shared.settings import ServiceSettings


class AggregationSection(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    port: int = 8003


class AggregationSettings(ServiceSettings):
    aggregation: AggregationSection = AggregationSection()
