"""What the scenarios share: the dataset's ids, running the load generator, tables, results files."""

from __future__ import annotations

import datetime
import json
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import psycopg
import redis

from bench import env, wrk


@dataclass
class Org:
    id: str
    slug: str
    secret: str
    units: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)  # dev_eui, same order as units
    ranges: list[tuple[float, float]] = field(default_factory=list)  # (temp_min, temp_max), same order


def load_orgs() -> list[Org]:
    with psycopg.connect(env.DATABASE_URL) as conn:
        orgs = {
            str(oid): Org(str(oid), slug, secret)
            for oid, slug, secret in conn.execute(
                "SELECT id, slug, webhook_secret FROM stats_organization ORDER BY substring(slug FROM 7)::int"
            )
        }
        rows = conn.execute(
            """SELECT u.organization_id, u.id, d.dev_eui, u.temp_min, u.temp_max FROM stats_unit u
               JOIN stats_device d ON d.unit_id = u.id ORDER BY u.organization_id, u.name"""
        )
        for org_id, unit_id, dev_eui, low, high in rows:
            org = orgs[str(org_id)]
            org.units.append(str(unit_id))
            org.devices.append(dev_eui)
            org.ranges.append((low, high))
    if not orgs:
        raise SystemExit("the bench database is empty: run python -m bench.dataset, or drop --no-dataset")
    return list(orgs.values())


def orgs_to_json(orgs: list[Org]) -> str:
    return json.dumps([vars(org) for org in orgs])


def orgs_from_json(text: str) -> list[Org]:
    return [Org(**{**item, "ranges": [tuple(r) for r in item["ranges"]]}) for item in json.loads(text)]


def uplink_body(dev_eui: str, temperature: float, f_cnt: int, at: datetime.datetime | None = None) -> bytes:
    """A TTN v3 uplink as The Things Stack posts it (the fields the webhook reads)."""
    stamp = (at or datetime.datetime.now(datetime.UTC)).isoformat().replace("+00:00", "Z")
    return json.dumps(
        {
            "end_device_ids": {"dev_eui": dev_eui},
            "received_at": stamp,
            "uplink_message": {
                "f_cnt": f_cnt,
                "decoded_payload": {"temperature": round(temperature, 2), "battery_v": 3.6, "humidity": 50},
                "rx_metadata": [{"rssi": -80}],
                "received_at": stamp,
            },
        }
    ).encode()


def redis_cache() -> redis.Redis:
    return redis.Redis.from_url(env.REDIS_URL, db=env.REDIS_CACHE_DB)


def flush_cache_db() -> None:
    """Flush the bench's cache db (sessions fall back to PostgreSQL: cached_db)."""
    redis_cache().flushdb()


def load(
    *,
    port: int,
    paths: list[str],
    cookie: str | None,
    connections: int,
    duration: float,
    warmup: float,
    tool: str,
    tls: bool = False,
) -> dict[str, object]:
    """One closed-loop load run in a separate process (wrk, or bench.loadgen); HTTPS with `tls`."""
    headers = {"Cookie": f"sessionid={cookie}"} if cookie else {}
    if tool == "wrk":
        return wrk.run(
            host="127.0.0.1",
            port=port,
            paths=paths,
            headers=headers,
            connections=connections,
            duration=duration,
            warmup=warmup,
            scheme="https" if tls else "http",
        )
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write("\n".join(paths))
    command = [sys.executable, "-m", "bench.loadgen", "--port", str(port), "--paths-file", handle.name]
    command += ["--connections", str(connections), "--duration", str(duration), "--warmup", str(warmup)]
    command += ["--tls"] if tls else []
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=env.ROOT).stdout
    return json.loads(out)


def table(title: str, columns: list[str], rows: list[list[object]]) -> str:
    cells = [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c) for i, c in enumerate(columns)]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths, strict=True)))

    out = [f"\n== {title}", line(columns), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    text = "\n".join(out)
    print(text, flush=True)
    return text


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if not a or not b else round(a / b, 3)


def machine() -> dict[str, object]:
    def cpu_model() -> str:
        try:
            for line in open("/proc/cpuinfo"):
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return platform.processor()

    def mem_gib() -> float | None:
        try:
            for line in open("/proc/meminfo"):
                if line.startswith("MemTotal"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
        except OSError:
            return None
        return None

    import os

    import django

    versions = {"python": platform.python_version(), "django": django.get_version()}
    for package in ("daphne", "gunicorn", "channels", "channels_redis", "django_redis", "redis", "psycopg"):
        try:
            from importlib.metadata import version

            versions[package] = version(package.replace("_", "-"))
        except Exception:  # noqa: BLE001 - a version we cannot read is just left out
            pass
    with psycopg.connect(env.DATABASE_URL) as conn:
        versions["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
    versions["redis-server"] = redis_cache().info("server")["redis_version"]
    try:
        versions["wrk"] = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()[1]
    except (OSError, IndexError):
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu_model(), "ramGiB": mem_gib(), "versions": versions}


def save(scenario: str, payload: dict[str, object]) -> None:
    env.RESULTS_DIR.mkdir(exist_ok=True)
    payload = {"scenario": scenario, "finishedAt": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **payload}
    path = env.RESULTS_DIR / f"{scenario}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"   -> {path.relative_to(env.ROOT)}", flush=True)
