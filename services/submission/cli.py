"""Operators' command line: `python -m services.submission lock-exception open|list ...`
(and `sources`, `operators`, `audit`: see `registry_cli`).

It calls a running submission service's operator API (`--url`, by default this machine's
submission port), so an exception opened here is checked, recorded and sent to validation
exactly as one opened with `POST /v1/admin/lock-exceptions`. With sender authentication
on, the operator's credential is read from `BAOCAO_OPERATOR_CREDENTIAL` (never from the
command line, which other users of the machine can see), and the exception is opened in
that operator's name. Exit status: 0 done, 1 refused (every issue is printed, in English
and Vietnamese), 2 the service could not be reached or failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import httpx

from shared.audit import login_name

from . import registry_cli
from .credentials import owner_of
from .settings import SubmissionSettings

CREDENTIAL_VARIABLE = "BAOCAO_OPERATOR_CREDENTIAL"

EXCEPTIONS_PATH = "/v1/admin/lock-exceptions"
COLUMNS = ("id", "regime", "period", "unit", "expires_at", "opened_by", "opened_at", "reason")


def parser(default_url: str, default_operator: str) -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m services.submission")
    commands = root.add_subparsers(dest="command", required=True)
    exceptions = commands.add_parser(
        "lock-exception", help="let a unit report into a locked period (ngoại lệ khóa sổ)"
    )
    actions = exceptions.add_subparsers(dest="action", required=True)

    opening = actions.add_parser("open", help="open an exception for one unit and period")
    opening.add_argument("--regime", required=True, help="regime code, e.g. KSTT-TTHC")
    opening.add_argument("--period", required=True, help="period code, e.g. 2026-Q1")
    opening.add_argument("--unit", required=True, help="reporting unit, e.g. TB.DH.N01")
    opening.add_argument(
        "--expires-at", required=True, help="end of the exception, ISO 8601 with an offset"
    )
    opening.add_argument("--reason", required=True, help="why it is opened (recorded)")
    opening.add_argument(
        "--opened-by",
        default=default_operator,
        help="operator name (default: the credential's operator, else your login)",
    )

    listing = actions.add_parser("list", help="the exceptions opened, oldest first")
    for name in ("regime", "period", "unit"):
        listing.add_argument(f"--{name}", help=f"only this {name}")

    for action in (opening, listing):
        action.add_argument("--url", default=default_url, help="submission's HTTP address")
    return root


def _print_refusal(answer: httpx.Response, err: TextIO) -> None:
    try:
        issues = answer.json()["issues"]
    except (ValueError, KeyError, TypeError):
        print(f"refused ({answer.status_code}): {answer.text[:500]}", file=err)
        return
    for found in issues:
        print(f"{found['code']} {found.get('field') or ''}: {found['message_en']}", file=err)
        print(f"    {found['message_vi']}", file=err)


def _table(rows: list[dict[str, Any]]) -> str:
    cells = [[str(row[c]) for c in COLUMNS] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(COLUMNS)]
    lines = [COLUMNS, *cells]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)) for line in lines
    )


def main(
    argv: Sequence[str],
    *,
    transport: httpx.BaseTransport | None = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    if argv and argv[0] in registry_cli.COMMANDS:
        return registry_cli.main(argv, out=out, err=err)
    settings = SubmissionSettings()
    credential = os.environ.get(CREDENTIAL_VARIABLE)
    operator = (owner_of(credential) if credential else None) or login_name()
    url = f"http://{settings.host}:{settings.submission.port}"
    args = parser(url, operator).parse_args(argv)
    headers = {"Authorization": f"Bearer {credential}"} if credential else {}
    try:
        with httpx.Client(
            base_url=args.url, transport=transport, timeout=30, headers=headers
        ) as http:
            if args.action == "open":
                body = {
                    "regime": args.regime,
                    "period": args.period,
                    "unit": args.unit,
                    "expires_at": args.expires_at,
                    "reason": args.reason,
                    "opened_by": args.opened_by,
                }
                answer = http.post(EXCEPTIONS_PATH, json=body)
            else:
                filters = {n: getattr(args, n) for n in ("regime", "period", "unit")}
                answer = http.get(EXCEPTIONS_PATH, params={k: v for k, v in filters.items() if v})
    except httpx.HTTPError as error:
        print(f"cannot reach submission at {args.url}: {error}", file=err)
        return 2
    if answer.status_code in (400, 401, 403, 413, 422):
        _print_refusal(answer, err)
        return 1
    if answer.is_error:
        print(f"submission answered {answer.status_code}: {answer.text[:500]}", file=err)
        return 2
    if args.action == "open":
        print(json.dumps(answer.json(), ensure_ascii=False, indent=2), file=out)
    else:
        rows = answer.json()
        print(_table(rows) if rows else "no lock exception recorded", file=out)
    return 0
