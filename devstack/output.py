"""The run's own output, which may lose its reader while the run goes on.

`scripts/run | tee run.log` is a natural way to keep the summary; a Ctrl-C in that terminal
reaches `tee` too, which exits at once. The run then stops what it started and says so;
printing to the pipe nobody reads raises BrokenPipeError, which must not cut the stopping
short and leave Kafka and PostgreSQL running. From the first such error on, the output is
dropped instead.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from typing import TextIO, cast


class ForgivingStream(io.TextIOBase):
    """A text stream that drops what it is given once its reader is gone."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.lost = False

    def write(self, text: str) -> int:
        if not self.lost:
            try:
                self._stream.write(text)
            except BrokenPipeError:
                self._lose()
        return len(text)

    def flush(self) -> None:
        if not self.lost:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._lose()

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def _lose(self) -> None:
        self.lost = True
        # What is still buffered would fail again when the interpreter flushes it at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)


@contextlib.contextmanager
def readerless_output() -> Iterator[None]:
    """Standard output and error that never fail the run for want of a reader."""
    out, err = sys.stdout, sys.stderr
    sys.stdout = cast(TextIO, ForgivingStream(out))
    sys.stderr = cast(TextIO, ForgivingStream(err))
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err
