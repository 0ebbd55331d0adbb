"""Sample traffic: realistic reports for the catalog's reporting units, sent to Kafka.

`reports` holds the pure plan (what to send next); `generator` paces it onto the inbound
topic. Run with `python -m services.traffic [--rate N] [--count N] [--seed N]`.
"""
