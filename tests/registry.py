"""Sources and operators as tests register them: submission's settings with sender
authentication on, and the registry's command line (sources, operators, audit) called in
process on the test's own servers, with its output for the assertions."""

from __future__ import annotations

import io
from typing import Any

from services.submission import registry_cli
from services.submission.settings import SubmissionSection, SubmissionSettings
from tests.factories import NOW
from tests.harness import service_settings


def secured(namespace: str, bootstrap: str, dsn: str, **section: Any) -> SubmissionSettings:
    """Submission with sender authentication on, its clock starting at NOW. The shared
    test broker is PLAINTEXT on loopback: anyone may write a source's topic there, but
    submission takes the sender from the topic exactly as behind a SASL listener whose ACLs
    let only that source write it (test_kafka_senders)."""
    fields: dict[str, Any] = {
        "sender_authentication": True,
        "unauthenticated_kafka": True,
        "signed_regimes": ("NVCP-S",),
        "rate_limit": "1000/minute",
        **section,
    }
    return service_settings(
        SubmissionSettings,
        namespace,
        bootstrap,
        dsn,
        now=NOW,
        submission=SubmissionSection(**fields),
    )


async def cli(config: SubmissionSettings, *argv: str, status: int = 0) -> str:
    """What the command printed: its output when it succeeds, else its errors."""
    out, err = io.StringIO(), io.StringIO()
    assert await registry_cli.run(argv, config, out=out, err=err) == status, err.getvalue()
    return out.getvalue().strip() if status == 0 else err.getvalue()
