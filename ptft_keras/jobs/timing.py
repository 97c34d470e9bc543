"""Where a job's time went: named phases, printed at the end and recorded in the report.

The clock starts when the process started (`process_start`, from /proc where there is one, else
when this module was imported), so "start-up" counts the interpreter and the imports a user waits for.

Example:
    >>> clock = PhaseClock(start=0.0)
    >>> clock.add("data", 2.5); clock.add("train", 10.0)
    >>> clock.phases
    {'data': 2.5, 'train': 10.0}
    >>> format_seconds(83.2), format_seconds(4.04)
    ('1 min 23 s', '4.0 s')
"""
from __future__ import annotations

import contextlib
import os
import time

IMPORTED = time.perf_counter()


def process_start() -> float:
    """When this process started, on the `time.perf_counter` clock."""
    try:
        with open("/proc/self/stat", encoding="ascii") as stream:
            fields = stream.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime", encoding="ascii") as stream:
            uptime = float(stream.read().split()[0])
        age = uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time, in ticks since boot
        return time.perf_counter() - age if 0 <= age < 86400 * 365 else IMPORTED
    except (OSError, ValueError, IndexError):
        return IMPORTED


def format_seconds(seconds: float) -> str:
    """`4.0 s`, `1 min 23 s`, `1 h 02 min`."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


class PhaseClock:
    """Seconds per named phase of a job; `start` is when the job's clock began (default: the process)."""

    def __init__(self, start: float | None = None):
        self.start = process_start() if start is None else start
        self.phases: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self.phases[name] = self.phases.get(name, 0.0) + seconds

    @contextlib.contextmanager
    def phase(self, name: str):
        began = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - began)

    def mark_startup(self) -> None:
        """Count everything from the process start until now as ``start-up``."""
        self.add("start-up", time.perf_counter() - self.start)

    def total(self) -> float:
        return time.perf_counter() - self.start

    def breakdown(self) -> str:
        """`start-up 4.1 s, data 2.0 s, ...` in the order the phases ran."""
        return ", ".join(f"{name} {format_seconds(seconds)}" for name, seconds in self.phases.items())

    def as_dict(self) -> dict:
        return {**{name: round(seconds, 3) for name, seconds in self.phases.items()}, "total": round(self.total(), 3)}
