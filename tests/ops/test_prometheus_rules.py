"""The Prometheus config and alert rules in ops/prometheus are valid, and their unit tests pass."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.ops.tools import PROMETHEUS_DIR, alert_rules, require_binary

ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts_test.yml"
SCRAPE_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
PRODUCTION_TOKEN_FILE = "/etc/prometheus/coldchain_metrics_token"

EXPECTED_ALERTS = {
    "DashboardCacheHitRateLow",
    "DashboardCacheErrorsHigh",
    "DashboardCacheLatencyHigh",
    "DashboardInvalidationFailures",
    "DashboardBroadcastFailures",
}


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_binary("promtool")


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=cwd)


def local_scrape_config(tmp_path: Path, *, token_file: Path | None) -> Path:
    """prometheus.yml with the token file moved to tmp_path (the production path is /etc/...)."""
    text = SCRAPE_CONFIG.read_text()
    assert PRODUCTION_TOKEN_FILE in text
    if token_file is not None:
        text = text.replace(PRODUCTION_TOKEN_FILE, str(token_file))
    text = text.replace("  - alerts.yml", f"  - {ALERTS}")
    config = tmp_path / "prometheus.yml"
    config.write_text(text)
    return config


def test_alert_rules_pass_promtool_check(promtool):
    result = run(promtool, "check", "rules", str(ALERTS))

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in result.stdout


def test_alert_rules_define_the_five_alerts_each_with_severity_and_annotations():
    text = ALERTS.read_text()

    assert set(alert_rules(ALERTS)) == EXPECTED_ALERTS
    blocks = re.split(r"\n\s*- alert: ", text)[1:]
    assert len(blocks) == len(EXPECTED_ALERTS)
    for block in blocks:
        name = block.split()[0]
        assert re.search(r"severity: (warning|critical)\b", block), name
        assert "summary:" in block and "description:" in block, name


def test_alert_rule_unit_tests_pass(promtool):
    result = run(promtool, "test", "rules", str(ALERT_TESTS), cwd=PROMETHEUS_DIR)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_unit_test_where_it_fires_and_one_where_it_does_not():
    text = ALERT_TESTS.read_text()
    firing, quiet = set(), set()
    for name, empty in re.findall(r"alertname: (\w+)\n\s+exp_alerts:( \[\])?", text):
        (quiet if empty else firing).add(name)

    assert firing == EXPECTED_ALERTS
    assert quiet == EXPECTED_ALERTS


def test_alert_rule_unit_tests_fail_when_a_threshold_changes(promtool, tmp_path):
    # Proves the unit tests look at the thresholds: loosen the hit-rate rule and they must fail.
    loosened = ALERTS.read_text().replace("< 0.5", "< 0.2")
    assert loosened != ALERTS.read_text()
    (tmp_path / "alerts.yml").write_text(loosened)
    (tmp_path / "alerts_test.yml").write_text(ALERT_TESTS.read_text())

    result = run(promtool, "test", "rules", "alerts_test.yml", cwd=tmp_path)

    assert result.returncode != 0
    assert "DashboardCacheHitRateLow" in result.stdout + result.stderr


def test_scrape_config_passes_promtool_check(promtool, tmp_path):
    token = tmp_path / "metrics_token"
    token.write_text("s3cret\n")
    config = local_scrape_config(tmp_path, token_file=token)

    result = run(promtool, "check", "config", str(config))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_scrape_config_scrapes_metrics_with_the_token_from_a_credentials_file(promtool, tmp_path):
    text = SCRAPE_CONFIG.read_text()
    assert "job_name: coldchain-dashboard" in text
    assert "metrics_path: /metrics" in text
    assert re.search(r"authorization:\n\s+type: Bearer\n\s+credentials_file: ", text)

    # promtool resolves the credentials file: a missing one is an error, so the reference is real.
    config = local_scrape_config(tmp_path, token_file=tmp_path / "missing")
    result = run(promtool, "check", "config", str(config))

    assert result.returncode != 0
    assert "missing" in result.stdout + result.stderr


def test_every_alert_links_to_its_section_in_the_operations_doc():
    doc = (PROMETHEUS_DIR.parents[1] / "docs" / "operations-alerts.md").read_text()
    headings = {line[3:].strip().lower() for line in doc.splitlines() if line.startswith("## ")}
    anchors = re.findall(r"runbook: docs/operations-alerts\.md#(\S+)", ALERTS.read_text())

    assert sorted(anchors) == sorted(name.lower() for name in EXPECTED_ALERTS)
    assert set(anchors) <= headings
