"""Operators' command line: `python -m services.connector operator-credential`.

Issues a new operator credential for the connector's operator endpoints: the credential
on standard output, once (the operators keep it), and on standard error the digest to
put in the connector's Secret (`BAOCAO_CONNECTOR__OPERATOR_CREDENTIAL_SHA256`). A new one
replaces the old once the connector restarts with its digest.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from .access import issue_credential


def main(argv: Sequence[str], *, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    root = argparse.ArgumentParser(prog="python -m services.connector")
    commands = root.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "operator-credential", help="issue an operator credential and print its digest"
    )
    root.parse_args(argv)
    credential, digest = issue_credential()
    print("operator credential (shown once; store it now):", file=err)
    print(credential.get_secret_value(), file=out)
    print(
        f"its digest, for the connector: BAOCAO_CONNECTOR__OPERATOR_CREDENTIAL_SHA256={digest}",
        file=err,
    )
    return 0
