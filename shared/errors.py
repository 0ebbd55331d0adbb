"""The exceptions of the system, in one place.

Business rejections are data, never exceptions: a report that breaks a rule gets an
`Outcome` with its issues (shared.contracts, shared.messages). Exceptions are for input that
cannot be read at all, configuration that cannot be used, and infrastructure that fails;
the infrastructure ones are retried with bounds and show in metrics.

    ValueError
     ├── DuplicateKeyError        shared.codec: a JSON object names a key twice (E100)
     ├── PeriodCodeError          shared.periods: a code that names no period (E104)
     ├── ExpressionError          shared.expressions: a catalog rule that is not arithmetic
     ├── CatalogError             shared.catalog: every `file: path: why` of a bad catalog
     ├── SyncLevelsError          services.connector.intake: a sync level the catalog lacks
     ├── BadKeyError              services.submission.signatures: not an Ed25519 public key
     └── BadNameError             services.submission.credentials: not a source/operator name
    Exception
     ├── HubUnavailableError      services.connector.hub_client: the hub did not answer what
     │                            it holds (transport error, refusal, unreadable answer)
     ├── TokenRefusedError        services.connector.hub_client: no token issued
     ├── RegistryError            services.submission.registry: an operator action refused
     └── DevstackError            devstack: a local server that cannot start
          ├── MissingToolError    a tool (java, maven, ...) is not installed
          ├── NotReadyError       a server did not become ready in time
          └── RunError            the supervisor's services failed

Kafka and PostgreSQL errors (aiokafka.errors, asyncpg.exceptions) and httpx's are not
wrapped: a batch that raises one is rewound and read again after a back-off, and after
three failures each record is retried alone (shared.batches); the hub's are retried by
the connector's delivery policy, behind a circuit.
"""

from __future__ import annotations

from shared.catalog import CatalogError
from shared.codec import DuplicateKeyError
from shared.expressions import ExpressionError
from shared.periods import PeriodCodeError

__all__ = ["CatalogError", "DuplicateKeyError", "ExpressionError", "PeriodCodeError"]
