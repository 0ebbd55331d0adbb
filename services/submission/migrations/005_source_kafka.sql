-- The Kafka user granted a source's two topics and its consumer groups (ACLs) through the
-- registry, so that `sources list` shows it and revoking the source removes those ACLs.
-- NULL: none granted through the registry.
ALTER TABLE sources ADD COLUMN kafka_principal text;
