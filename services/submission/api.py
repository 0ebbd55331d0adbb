"""Submission's REST API for local systems: send a report, read its verdict."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, Field

from shared.contracts import Issue, Outcome, Report
from shared.messages import issue
from shared.web import ExactJSONResponse

from . import store
from .ingest import Ingest
from .intake import Unreadable
from .settings import SubmissionSection


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


def _refused(unreadable: Unreadable) -> JSONResponse:
    status = (
        413 if unreadable.code == "E150" else 422 if unreadable.issues[0].field != "(body)" else 400
    )
    return _json(
        status, Refused(report_id=unreadable.report_id, status="rejected", issues=unreadable.issues)
    )


def build_api(ingest: Ingest, section: SubmissionSection, pool: Any) -> APIRouter:
    api = APIRouter(prefix="/v1", tags=["reports"])
    limit = section.max_report_bytes

    @api.post(
        "/reports",
        status_code=202,
        responses={
            202: {"model": Received},
            200: {"model": Duplicate},
            400: {"model": Refused, "description": "Not JSON (E100)."},
            413: {"model": Refused, "description": "Too large (E150)."},
            422: {"model": Refused, "description": "Does not match the contract (E100)."},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": Report.model_json_schema(by_alias=True)}
                },
            }
        },
    )
    async def post_report(request: Request) -> JSONResponse:
        """Send one report. 202 once it is stored: it cannot be lost from then on."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return _refused(Unreadable((issue("E150", size=int(declared), limit=limit),)))
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > limit:
                return _refused(Unreadable((issue("E150", size=f">{limit}", limit=limit),)))
        result = await ingest.from_http(bytes(raw))
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
            404: {"description": "Unknown."},
        },
    )
    async def get_report(report_id: str) -> JSONResponse:
        """The verdict on a report (200), or 202 while it is being validated."""
        async with pool().acquire() as conn:
            received_at, verdict = await store.report_state(conn, report_id)
        if verdict is not None:
            return ExactJSONResponse(verdict.model_dump(mode="python", by_alias=True))
        if received_at is not None:
            return _json(
                202, Pending(report_id=report_id, status="pending", received_at=received_at)
            )
        return JSONResponse({"detail": f"no report with id {report_id}"}, status_code=404)

    return api
