"""Submission's REST API for local systems: send a report, read its verdict.

With sender authentication on, `POST /v1/reports` takes `Authorization: Bearer
<credential>` (401 E140 without a good one, 403 E141 for a unit not the sender's, 422
E142 for a signature missing or wrong, 429 with Retry-After over the sender's rate
limit). The credential is checked before the body is read: an unauthenticated caller
cannot make the service read 512 KiB.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AwareDatetime, BaseModel, Field, SecretStr

from shared.contracts import Issue, Outcome, Report
from shared.messages import CHECKS_LIMITED, RATE_LIMITED, issue
from shared.web import ExactJSONResponse

from . import store
from .access import Access, Denied
from .ingest import Ingest
from .intake import Unreadable
from .senders import Source
from .settings import SubmissionSection

bearer = HTTPBearer(
    auto_error=False,
    description="A source's credential (`<source>.<secret>`), when sender authentication is on.",
)
Credential = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]

# E140 → 401, E141 → 403, E142 → 422, E150 → 413; E100 → 400 for the body, 422 for a field.
STATUS_OF = {"E140": 401, "E141": 403, "E142": 422, "E150": 413}


class Received(BaseModel):
    report_id: str
    status: str = Field(
        description='"received": stored; the verdict follows on reports.outcomes.v1.'
    )
    received_at: AwareDatetime


class Duplicate(BaseModel):
    report_id: str
    status: str = Field(description='"duplicate": this report_id was received before.')
    verdict: Outcome | None = Field(description="The original verdict, null while pending.")


class Refused(BaseModel):
    report_id: str | None
    status: str = Field(description='"rejected".')
    issues: tuple[Issue, ...]


class Pending(BaseModel):
    report_id: str
    status: str = Field(description='"pending": received, not decided yet.')
    received_at: AwareDatetime


def _json(status: int, body: BaseModel) -> JSONResponse:
    return JSONResponse(body.model_dump(mode="json", by_alias=True), status_code=status)


class RateLimited(BaseModel):
    status: str = Field(description='"rate_limited".')
    retry_after: int = Field(description="Seconds to wait, as in the Retry-After header.")
    message_vi: str
    message_en: str


def _refused(unreadable: Unreadable) -> JSONResponse:
    status = STATUS_OF.get(unreadable.code, 422 if unreadable.issues[0].field != "(body)" else 400)
    response = _json(
        status, Refused(report_id=unreadable.report_id, status="rejected", issues=unreadable.issues)
    )
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="baocao"'
    return response


def rate_limited(
    sender: str,
    limit: str,
    retry_after: int,
    wording: tuple[str, str] = RATE_LIMITED,
    **more: str,
) -> JSONResponse:
    vi, en = wording
    facts = {"sender": sender, "limit": limit, "retry_after": retry_after, **more}
    body = RateLimited(
        status="rate_limited",
        retry_after=retry_after,
        message_vi=vi.format(**facts),
        message_en=en.format(**facts),
    )
    return JSONResponse(
        body.model_dump(), status_code=429, headers={"Retry-After": str(retry_after)}
    )


def self_contained(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema with its `$defs` written in place: inside an OpenAPI document,
    `#/$defs/...` would point at the document's root, where there are none."""
    defs = schema.get("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    result: dict[str, Any] = inline(schema)
    return result


@dataclass(frozen=True, slots=True)
class TooLarge:
    """A body over the limit: the size it declared, with nothing read (`head` None), or
    the first `limit` bytes read before it went over."""

    size: int | str
    head: bytes | None


async def read_capped(request: Request, limit: int) -> bytes | TooLarge:
    """The body, read as it streams in and given up as soon as it is over `limit` bytes:
    a caller cannot make the service hold more than that, whatever Content-Length says
    (a declared length over the limit is refused before a byte is read)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return TooLarge(int(declared), None)
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            return TooLarge(f">{limit}", bytes(raw[:limit]))
    return bytes(raw)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def secret_of(credential: HTTPAuthorizationCredentials | None) -> SecretStr | None:
    return SecretStr(credential.credentials) if credential is not None else None


def build_api(ingest: Ingest, section: SubmissionSection, pool: Any, access: Access) -> APIRouter:
    api = APIRouter(prefix="/v1", tags=["reports"])
    limit = section.max_report_bytes

    @api.post(
        "/reports",
        status_code=202,
        responses={
            202: {"model": Received},
            200: {"model": Duplicate},
            400: {"model": Refused, "description": "Not JSON (E100)."},
            401: {"model": Refused, "description": "No or a bad credential (E140)."},
            403: {"model": Refused, "description": "Not a unit of this sender (E141)."},
            413: {"model": Refused, "description": "Too large (E150)."},
            422: {
                "model": Refused,
                "description": "Does not match the contract (E100), or a signature is "
                "missing or wrong (E142).",
            },
            429: {"model": RateLimited, "description": "Over the sender's rate limit."},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": self_contained(Report.model_json_schema(by_alias=True))
                    }
                },
            }
        },
    )
    async def post_report(request: Request, credential: Credential) -> JSONResponse:
        """Send one report. 202 once it is stored: it cannot be lost from then on."""
        sender: Source | None = None
        client = client_address(request)
        if access.enabled:
            found = await access.source(pool(), secret_of(credential), client)
            if isinstance(found, Denied):
                ingest.count_refused(found.issue.code if found.issue else "429")
                return _denied(found, client)
            sender = found
            # Per source: without authentication there is no sender to count for.
            wait = access.reports.take(sender.name)
            if wait is not None:
                ingest.count_rate_limited()
                return rate_limited(sender.name, access.reports.spec, wait)
        raw = await read_capped(request, limit)
        if isinstance(raw, TooLarge):
            refusal = Unreadable((issue("E150", size=raw.size, limit=limit),))
            if raw.head is None:
                ingest.count_refused("E150")
            else:  # what was read goes where a refused body goes
                await ingest.refuse_http(refusal, raw.head, truncated=True)
            return _refused(refusal)
        with ingest.http_stage():
            result = await ingest.from_http(raw, sender)
        if isinstance(result, Unreadable):
            return _refused(result)
        if result.duplicate:
            return _json(
                200,
                Duplicate(report_id=result.report_id, status="duplicate", verdict=result.verdict),
            )
        return _json(
            202,
            Received(report_id=result.report_id, status="received", received_at=result.received_at),
        )

    @api.get(
        "/reports/{report_id}",
        responses={
            200: {"model": Outcome},
            202: {"model": Pending},
            401: {"model": Refused, "description": "No or a bad credential (E140)."},
            404: {"description": "Unknown."},
            429: {"model": RateLimited, "description": "Too many failed credential checks."},
        },
    )
    async def get_report(report_id: str, request: Request, credential: Credential) -> JSONResponse:
        """The verdict on a report (200), or 202 while it is being validated."""
        reader: Source | None = None
        if access.enabled:
            found = await access.source(pool(), secret_of(credential), client_address(request))
            if isinstance(found, Denied):
                return _denied(found, client_address(request))
            reader = found
        async with pool().acquire() as conn:
            received_at, verdict = await store.report_state(conn, report_id)
            unit = await store.report_unit(conn, report_id) if reader else None
        if reader is not None and unit not in reader.units:
            # Another unit's report is not this sender's to read: as if unknown.
            received_at, verdict = None, None
        if verdict is not None:
            return ExactJSONResponse(verdict.model_dump(mode="python", by_alias=True))
        if received_at is not None:
            return _json(
                202, Pending(report_id=report_id, status="pending", received_at=received_at)
            )
        return JSONResponse({"detail": f"no report with id {report_id}"}, status_code=404)

    return api


def checks_limited(denied: Denied, client: str) -> JSONResponse:
    """429 for a caller whose checks for the name it claims failed too often."""
    wait = denied.retry_after or 60
    return rate_limited(denied.claimed, denied.limit, wait, CHECKS_LIMITED, address=client)


def _denied(denied: Denied, client: str) -> JSONResponse:
    if denied.issue is None:
        return checks_limited(denied, client)
    return _refused(Unreadable((denied.issue,)))
