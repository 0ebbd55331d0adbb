"""Benchmarks of the pipeline against the real local Kafka and PostgreSQL (`scripts/bench`)."""
