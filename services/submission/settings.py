from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.contracts import Code
from shared.settings import ServiceSettings


class SubmissionSection(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    port: int = 8001
    max_report_bytes: int = Field(
        default=512 * 1024,
        ge=1024,
        description="Largest report accepted (E150 above), under Kafka's 1 MiB message limit.",
    )
    sender_authentication: bool = Field(
        default=False,
        description="The one switch of sender authentication, for both channels: HTTP "
        "senders and operators need a bearer credential, and Kafka reports are read only "
        "from each source's own topic (its principal may write nothing else). Off in the "
        "local run (plaintext Kafka on loopback), on in deploy/.",
    )
    unauthenticated_kafka: bool = Field(
        default=False,
        description="Lets sender authentication run while the services reach Kafka over "
        "PLAINTEXT. Such a listener authenticates nobody, so anyone who reaches it can write "
        "`reports.inbound.v1.<source>` as that source: refused at start unless this says "
        "the broker is trusted another way (tests on a loopback broker).",
    )
    signed_regimes: tuple[Code, ...] = Field(
        default=(),
        description="Regimes whose every report must be signed (E142 otherwise), whatever "
        "the source and whether or not senders are authenticated (without authentication, "
        "by a key of the source the report names); a source can also be required to sign "
        "everything it sends (applied with authentication on).",
    )
    rate_limit: str = Field(
        default="120/minute",
        pattern=r"^\d+/(second|minute|hour)$",
        description="Reports one source may send over HTTP per window; 429 with "
        "Retry-After above it.",
    )
    failed_checks: str = Field(
        default="20/minute",
        pattern=r"^\d+/(second|minute|hour)$",
        description="Failed credential checks per window for one client address and the "
        "name its credential claims; that pair gets 429 with Retry-After above it, without "
        "a verification. Nobody else is held back: not the name from another address, not "
        "another name, nor a credential the instance has verified already.",
    )
    max_text_chars: int = Field(
        default=4000, ge=1, description="Longest text value of an indicator (E150 above)."
    )
    max_number_digits: int = Field(
        default=40,
        ge=16,
        description="Most significant digits of a number (E150 above): the exact arithmetic "
        "downstream costs grow with the digits.",
    )
    max_number_exponent: int = Field(
        default=40,
        ge=16,
        description="Largest power of ten of a number, either way (E150 above): 1E+100000 "
        "is 9 bytes of JSON but a 100 kB number once written out.",
    )
    source_partitions: int = Field(
        default=3, ge=1, description="Partitions of each source's own inbound and outcome topic."
    )


class SubmissionSettings(ServiceSettings):
    submission: SubmissionSection = SubmissionSection()

    @model_validator(mode="after")
    def _senders_bound_by_the_broker(self) -> Self:
        # Over Kafka a sender is known only by the topic its principal may write: without
        # SASL on the listener there is no principal, and the binding is void.
        section = self.submission
        if (
            section.sender_authentication
            and self.kafka.security_protocol == "PLAINTEXT"
            and not section.unauthenticated_kafka
        ):
            raise ValueError(
                "sender authentication needs a Kafka listener that authenticates clients "
                "(BAOCAO_KAFKA__SECURITY_PROTOCOL SASL_SSL or SASL_PLAINTEXT); with PLAINTEXT "
                "anyone can write a source's topic. Set "
                "BAOCAO_SUBMISSION__UNAUTHENTICATED_KAFKA=true only for a broker nobody "
                "else reaches"
            )
        return self
