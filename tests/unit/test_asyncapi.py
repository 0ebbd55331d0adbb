"""The AsyncAPI document names every topic with the schema of what travels on it."""

from __future__ import annotations

from shared.asyncapi import document
from shared.contracts import PAYLOADS, TOPICS


def test_every_topic_and_its_dead_letter_companion_is_a_channel() -> None:
    channels = set(document()["channels"])
    assert {t.name for t in TOPICS} <= channels
    assert {t.dlq for t in TOPICS if t.has_dlq} <= channels


def test_every_payload_model_is_described_field_by_field() -> None:
    schemas = document()["components"]["schemas"]
    for models in PAYLOADS.values():
        for model in models:
            properties = schemas[model.__name__]["properties"]
            undescribed = [name for name, field in properties.items() if "description" not in field]
            assert not undescribed, (model.__name__, undescribed)


def test_every_object_schema_in_the_document_is_described_field_by_field() -> None:
    # Nested models too (Issue, Completeness, Signature): the hub team reads them the same.
    schemas = document()["components"]["schemas"]
    objects = {name: schema for name, schema in schemas.items() if "properties" in schema}
    assert {"Issue", "Completeness", "Signature"} <= set(objects)
    for name, schema in objects.items():
        undescribed = [f for f, field in schema["properties"].items() if "description" not in field]
        assert not undescribed, (name, undescribed)
