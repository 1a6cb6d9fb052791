"""CPU time of the server side, from /proc: gunicorn's workers and the bench database's backends.

Dividing by the requests sent gives CPU milliseconds per request, which says
where a slow endpoint spends its time (Python or PostgreSQL) and is much less
sensitive than requests/s to other load on the machine. Linux only; elsewhere
the numbers are simply missing.
"""

from __future__ import annotations

import os

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces.
    return text[text.rindex(")") + 2:].split()


def cpu_seconds(pid: int) -> float:
    """Seconds of CPU (user + system) a process has used; 0 when it is gone."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    # After the name: state(0) ppid(1) ... utime(11) stime(12)
    return (int(fields[11]) + int(fields[12])) / _TICKS


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry))
    return found


def backends(database: str) -> list[int]:
    """PostgreSQL backend processes connected to `database` (their title names it)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                title = f.read().decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres: ") and f" {database} " in title:
            found.append(int(entry))
    return found


class CpuMeter:
    """CPU seconds used by a changing set of processes between start() and stop()."""

    def __init__(self, find_pids):
        self.find_pids = find_pids
        self.available = os.path.isdir("/proc")

    def snapshot(self) -> dict[int, float]:
        if not self.available:
            return {}
        return {pid: cpu_seconds(pid) for pid in self.find_pids()}

    def start(self) -> None:
        self.before = self.snapshot()

    def stop(self) -> float | None:
        if not self.available:
            return None
        after = self.snapshot()
        # A process that appeared during the run counts from zero.
        return sum(cpu - self.before.get(pid, 0.0) for pid, cpu in after.items())
