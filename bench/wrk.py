"""Drive `wrk` (Debian package `wrk`) with the same inputs and output as bench/loadgen.py.

wrk is a C load generator: it needs a fraction of the CPU the Python one does, which matters when
server and load generator share two cores. A generated Lua script takes paths round-robin (each
wrk thread starts at a different offset) and reports percentiles as JSON.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile

SCRIPT = """
local paths = {%(paths)s}
local counter = 0
local i = 0
function setup(thread)
  thread:set("offset", counter)
  counter = counter + 1
end
function init(args)
  i = (offset or 0) * 7919
end
function request()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p95_us":%%d,"p99_us":%%d,"max_us":%%d,' ..
    '"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def _script(paths: list[str]) -> str:
    quoted = ",".join(json.dumps(p) for p in paths)
    return SCRIPT % {"paths": quoted}


def _wrk(url: str, script_path: str, headers: dict[str, str], connections: int, seconds: float) -> dict:
    threads = max(1, min(2, connections))
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s"]
    command += ["--timeout", "30s", "-s", script_path]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    command.append(url)
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("WRKJSON "))
    return json.loads(line[len("WRKJSON ") :])


def run(
    *,
    host: str,
    port: int,
    paths: list[str],
    headers: dict[str, str],
    connections: int,
    duration: float,
    warmup: float,
    scheme: str = "http",
) -> dict[str, object]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(_script(paths))
    url = f"{scheme}://{host}:{port}"  # wrk does not verify a certificate
    if warmup > 0:
        _wrk(url, handle.name, headers, connections, warmup)
    raw = _wrk(url, handle.name, headers, connections, duration)
    seconds = raw["duration_us"] / 1e6
    errors = raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
    return {
        "requests": raw["requests"],
        "seconds": round(seconds, 3),
        "rps": round(raw["requests"] / seconds, 1),
        "p50_ms": raw["p50_us"] / 1000,
        "p95_ms": raw["p95_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "connections": connections,
        # wrk counts only answers >= 400 as status errors; everything else is a success here.
        "statuses": {"2xx/3xx": raw["requests"] - raw["status"], ">=400": raw["status"]},
        "errors": errors,
        "tool": "wrk",
    }
