-- How far each Kafka partition's reports are known to be forwarded to reports.received.v1.
-- A report from Kafka is published once its transaction has committed; a record read again
-- beyond this offset (the process stopped before the broker acknowledged) whose report is
-- stored is forwarded again, and one at or below it is not (a replay publishes nothing).
CREATE TABLE forwarded (
    source_topic     text   NOT NULL,
    source_partition int    NOT NULL,
    upto             bigint NOT NULL,
    PRIMARY KEY (source_topic, source_partition)
);

-- Reports stored before this table were forwarded through the outbox, committed with them.
INSERT INTO forwarded (source_topic, source_partition, upto)
SELECT source_topic, source_partition, max(source_offset)
FROM reports
WHERE source_topic IS NOT NULL
GROUP BY source_topic, source_partition;
