"""Where the machine's CPU went during a measured window: per server, per load generator, per
database, read from /proc (Linux).

A day on the full profile can ask more of the machine than it has; this shows whether it did,
and who asked. Each process is counted under the nearest of its ancestors (itself included)
that the caller named, so a gunicorn master's workers count as that server's; any other process
is counted under its command name (postgres, redis-server). A process that exited inside the
window is not counted (none of the day's do).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Snapshot:
    processes: dict[int, tuple[str, int, float]]  # pid -> (command name, parent pid, CPU seconds)
    busy: float  # the machine's CPU seconds spent on anything but idle and iowait
    total: float  # the machine's CPU seconds of every kind


def snapshot() -> Snapshot:
    processes: dict[int, tuple[str, int, float]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as handle:
                raw = handle.read()
        except OSError:  # gone since the scan
            continue
        # The command name is in parentheses and may hold spaces: the fields follow the last ")".
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        processes[int(entry.name)] = (comm, int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS)
    with open("/proc/stat") as handle:
        ticks = [int(n) for n in handle.readline().split()[1:]]
    idle = ticks[3] + ticks[4]
    return Snapshot(processes, (sum(ticks) - idle) / _TICKS, sum(ticks) / _TICKS)


def usage(before: Snapshot, after: Snapshot, named: dict[int, str]) -> dict[str, float]:
    """CPU seconds per label between the two snapshots, and "machine busy" as a fraction."""

    def label(pid: int) -> str:
        seen = pid
        while seen > 1 and seen in after.processes:
            if seen in named:
                return named[seen]
            seen = after.processes[seen][1]
        return after.processes[pid][0]

    spent: dict[str, float] = {}
    for pid, (_, _, seconds) in after.processes.items():
        earlier = before.processes.get(pid)
        delta = seconds - (earlier[2] if earlier else 0.0)
        if delta > 0:
            name = label(pid)
            spent[name] = spent.get(name, 0.0) + delta
    spent["machine busy"] = (after.busy - before.busy) / max(after.total - before.total, 1e-9)
    return spent


def cores(spent: dict[str, float], seconds: float, top: int = 8) -> dict[str, float]:
    """The largest users as cores over `seconds` (1.0 = one core all the time), the machine's
    busy fraction kept as it is."""
    busy = spent.get("machine busy")
    ranked = sorted(((k, v) for k, v in spent.items() if k != "machine busy"), key=lambda kv: -kv[1])
    result = {name: round(value / seconds, 2) for name, value in ranked[:top]}
    if busy is not None:
        result["machine busy"] = round(busy, 2)
    return result
