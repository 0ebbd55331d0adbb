"""Operators' command line: `python -m services.connector operator-credential NAME`.

Issues a credential for operator NAME on the connector's operator endpoints: the
credential (`NAME.<secret>`) on standard output, once (the operator keeps it), and on
standard error its digest, as the entry to add to the connector's Secret
(`BAOCAO_CONNECTOR__OPERATORS`, a JSON object of name → digest). It takes effect, and a
new one for the same name replaces the old, once the connector restarts with it; an
operator removed from the object can no longer act.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from .access import issue_credential


def main(argv: Sequence[str], *, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    root = argparse.ArgumentParser(prog="python -m services.connector")
    commands = root.add_subparsers(dest="command", required=True)
    command = commands.add_parser(
        "operator-credential", help="issue an operator's credential and print its digest"
    )
    command.add_argument("name", help="the operator, as the audit log will name them")
    args = root.parse_args(argv)
    try:
        credential, digest = issue_credential(args.name)
    except ValueError as error:
        print(error, file=err)
        return 2
    print(f"credential of operator {args.name} (shown once; store it now):", file=err)
    print(credential.get_secret_value(), file=out)
    print(
        "its digest, to add to the connector's BAOCAO_CONNECTOR__OPERATORS:"
        f" {json.dumps({args.name: digest})}",
        file=err,
    )
    return 0
