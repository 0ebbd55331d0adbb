"""Sampling profiles of the running services (py-spy), summed up as their top functions.

py-spy reads a process's stacks from outside, without pausing it (`--nonblocking`), so
the profiled run keeps its pace. The raw output (one line per distinct stack with its
sample count) is kept per service; `top` sums it by function: self samples (the function
was running) and total samples (it was on the stack).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

RATE_HZ = 100
_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_LINE_NUMBER = re.compile(r":\d+\)$")


@dataclass(frozen=True, slots=True)
class Hotspot:
    function: str
    self_share: float
    total_share: float


def _py_spy() -> str:
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise RuntimeError("py-spy is not installed (scripts/install puts it in .venv)")
    return found


class Profiler:
    def __init__(self, pids: Mapping[str, int], folder: Path) -> None:
        self._pids = pids
        self.folder = folder
        self._running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, pid in self._pids.items():
            with (self.folder / f"{name}.log").open("wb") as log:
                self._running[name] = subprocess.Popen(
                    [
                        _py_spy(),
                        "record",
                        "--pid",
                        str(pid),
                        "--format",
                        "raw",
                        "--rate",
                        str(RATE_HZ),
                        "--nonblocking",
                        "--output",
                        str(self.folder / f"{name}.raw"),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )

    def stop(self) -> dict[str, Path]:
        """Stop sampling; py-spy writes its output when interrupted."""
        for process in self._running.values():
            process.send_signal(signal.SIGINT)
        for process in self._running.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        found = {name: self.folder / f"{name}.raw" for name in self._running}
        self._running.clear()
        return {name: path for name, path in found.items() if path.exists()}


def top(raw: Path, count: int = 12) -> tuple[int, list[Hotspot]]:
    """(samples, the functions with most self samples, with their total share)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        n = int(match["count"])
        frames = [_LINE_NUMBER.sub(")", f) for f in match["stack"].split(";")]
        if not frames:
            continue
        samples += n
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    if not samples:
        return 0, []
    return samples, [
        Hotspot(function, n / samples, total[function] / samples)
        for function, n in own.most_common(count)
    ]


def top_inclusive(raw: Path, prefix: str, count: int = 12) -> list[tuple[str, float]]:
    """The functions of the project's own code (frames naming `prefix`, e.g. "services/")
    with most samples on the stack."""
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        n = int(match["count"])
        samples += n
        frames = {_LINE_NUMBER.sub(")", f) for f in match["stack"].split(";")}
        for frame in frames:
            if prefix in frame:
                total[frame] += n
    if not samples:
        return []
    return [(function, n / samples) for function, n in total.most_common(count)]
