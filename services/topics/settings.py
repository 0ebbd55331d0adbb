from __future__ import annotations

from shared.settings import ServiceSettings


class TopicsSettings(ServiceSettings):
    """What every service reads: the Kafka settings and the retention (`BAOCAO_TOPICS__*`,
    `shared.settings.RetentionSection`), which submission also applies to each source's
    topics as it creates them."""
