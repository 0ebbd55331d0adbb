"""Topic provisioning as code: the production topics, their partitions, replication,
`min.insync.replicas`, compaction and retention, created and reconciled idempotently.

`python -m services.topics [--dry-run]` (the image's `provision-topics` command) runs it;
`plan.py` decides, `admin.py` reads and changes the cluster.
"""
