"""The AsyncAPI document of every topic, generated from `shared.contracts` by faststream.

Local-system developers and the hub team read it; every service serves it at
`/asyncapi.json`, and `python -m shared.asyncapi` prints it. The topics are declared on a
documentation-only broker (never connected), one channel per topic with its payload
schema; dead-letter topics carry raw bytes and are described in words.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from shared import codec
from shared.contracts import PAYLOADS, TOPICS

DLQ_DESCRIPTION = (
    "Dead letters of {topic}: the raw bytes of a message that could not be processed, "
    "with headers dlq.error, dlq.stage, dlq.source.topic, dlq.source.partition and "
    "dlq.source.offset."
)


@functools.cache
def document() -> dict[str, Any]:
    broker = KafkaBroker(description="baocao: the reporting information system of a province")
    for spec in TOPICS:
        payloads = PAYLOADS[spec.name]
        schema: Any = payloads[0]
        for other in payloads[1:]:
            schema = schema | other
        broker.publisher(spec.name, schema=schema, title=spec.name, description=spec.description)
        if spec.has_dlq:
            broker.publisher(
                spec.dlq,
                schema=bytes,
                title=spec.dlq,
                description=DLQ_DESCRIPTION.format(topic=spec.name),
            )
    spec_json = AsyncAPI(broker, title="baocao", version="1.0.0").to_specification().to_json()
    parsed: dict[str, Any] = codec.loads(spec_json)
    return parsed


if __name__ == "__main__":
    sys.stdout.write(codec.dumps(document()).decode() + "\n")
