-- Where each report read from Kafka was stored from: a batch read again (after a crash, or a
-- replay under new consumer groups) is recognised by its records' offsets before any is parsed.
CREATE INDEX reports_source ON reports (source_topic, source_partition, source_offset);
