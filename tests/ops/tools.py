"""Helpers for the ops tests: the Prometheus binaries, the Grafana dashboard's panels, PromQL in config files.

There is no YAML parser among the project's dependencies, so the few facts the tests need from
alerts.yml (alert names, `expr:` values) are read with a small line-based reader that handles
the two forms the file uses: `expr: <one line>` and `expr: |` followed by an indented block.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "ops" / "prometheus"
GRAFANA_DASHBOARD = REPO / "ops" / "grafana" / "coldchain-dashboard.json"

# tests/system_deps.sh may be installing the Debian `prometheus` package while the suite starts.
INSTALL_WAIT_SECONDS = 300


def _package_manager_running() -> bool:
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() in {"apt-get", "apt", "dpkg"}:
                return True
        except OSError:
            continue
    return False


def require_binary(name: str) -> str:
    """The path of `name`; waits while apt/dpkg runs (it may be installing it), else fails clearly."""
    deadline = time.monotonic() + INSTALL_WAIT_SECONDS
    while True:
        path = shutil.which(name)
        if path:
            return path
        if not _package_manager_running() or time.monotonic() > deadline:
            pytest.fail(
                f"{name} not found on PATH: install the Debian `prometheus` package (bash tests/system_deps.sh)",
                pytrace=False,
            )
        time.sleep(1)


# --- Grafana ---------------------------------------------------------------------------------
def load_dashboard() -> dict:
    return json.loads(GRAFANA_DASHBOARD.read_text())


def query_panels(dashboard: dict) -> list[dict]:
    panels = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            panels += panel.get("panels", [])
        else:
            panels.append(panel)
    return panels


# --- PromQL ----------------------------------------------------------------------------------
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_IDENTIFIER = re.compile(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """Metric names selected by a PromQL expression (functions, keywords and label names excluded)."""
    text = _GRAFANA_VARIABLE.sub("1", expr)
    text = _STRING.sub('""', text)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        word = match.group()
        if text[match.end() :].lstrip().startswith("("):  # a function or an aggregation
            continue
        if word.lower() in _KEYWORDS:
            continue
        names.add(word)
    return names


def grafana_variables_substituted(expr: str) -> str:
    """The expression as Prometheus would receive it from Grafana (for syntax checks)."""
    return expr.replace("$__rate_interval", "1m").replace("$job", "coldchain-dashboard")


# --- alerts.yml ------------------------------------------------------------------------------
def alert_rules(path: Path) -> dict[str, str]:
    """{alert name: expr} from a Prometheus rules file."""
    rules: dict[str, str] = {}
    current: str | None = None
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        alert = re.match(r"^\s*-\s*alert:\s*(\S+)\s*$", line)
        if alert:
            current = alert.group(1)
        expr = re.match(r"^(\s*)expr:\s*(.*)$", line)
        if expr and current is not None:
            indent, rest = len(expr.group(1)), expr.group(2).strip()
            if rest in {"|", "|-", ">", ">-"}:
                block = []
                i += 1
                while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                    block.append(lines[i].strip())
                    i += 1
                rules[current] = " ".join(part for part in block if part)
                continue
            rules[current] = rest.strip("'\"")
        i += 1
    return rules


def sample_names(exposition: str) -> set[str]:
    """Sample names in a Prometheus text exposition (what Prometheus stores and queries can select)."""
    names = set()
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names
