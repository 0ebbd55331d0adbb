"""HTTP answers in the system's JSON: exact decimals as JSON numbers."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from shared import codec


class ExactJSONResponse(JSONResponse):
    """Like FastAPI's JSONResponse, but `Decimal` stays exact (the standard encoder fails)."""

    def render(self, content: Any) -> bytes:
        return codec.dumps(content)
