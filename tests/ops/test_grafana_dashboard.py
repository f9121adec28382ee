"""The Grafana dashboard in ops/grafana is well formed, and it and the alert rules only query
metrics the app really exports."""

from __future__ import annotations

import importlib
import importlib.util
import json
import subprocess

import pytest
from django.test import Client, override_settings
from prometheus_client import REGISTRY

from stats import cache
from stats.cache import QueryType
from tests import factories
from tests.ops.tools import (
    PROMETHEUS_DIR,
    alert_rules,
    grafana_variables_substituted,
    load_dashboard,
    metric_names,
    query_panels,
    require_binary,
    sample_names,
)

# Metrics of the realtime code (realtime.broadcast, .consumers, .ingest). Their labelled series
# only appear in /metrics after a broadcast, a WebSocket rejection or an uplink, which these tests
# do not drive; they are checked against the metrics the realtime modules register instead,
# as soon as realtime.broadcast is importable.
REALTIME_METRICS = {
    "dashboard_events_sent_total",
    "dashboard_broadcast_errors_total",
    "dashboard_websocket_connections",
    "dashboard_websocket_rejected_total",
    "dashboard_ingest_total",
    "dashboard_emit_duration_seconds_bucket",
}
REALTIME_MODULES = ("realtime.broadcast", "realtime.consumers", "realtime.ingest")

EXPECTED_PANELS = [
    "Cache hit rate",
    "Cache errors by operation",
    "Cache latency p50 / p95 / p99",
    "Invalidations and keys deleted",
    "Invalidation duration",
    "HTTP request rate",
    "HTTP latency",
    "Database queries per request",
    "WebSocket connections",
    "Events sent by type",
    "Stale sets refused",
    "Single-flight waits",
    "Redis circuit breaker open",
]


def dashboard_queries(dashboard: dict) -> list[str]:
    exprs = [target["expr"] for panel in query_panels(dashboard) for target in panel["targets"]]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


def queried_metric_names() -> set[str]:
    names: set[str] = set()
    for expr in dashboard_queries(load_dashboard()):
        # label_values(metric, label) is Grafana's, not PromQL: its first argument is a selector.
        if expr.startswith("label_values("):
            expr = expr[len("label_values(") :].split(",")[0]
        names |= metric_names(expr)
    for expr in alert_rules(PROMETHEUS_DIR / "alerts.yml").values():
        names |= metric_names(expr)
    return names


_SAMPLE_SUFFIXES = {
    "counter": ["_total"],
    "gauge": [""],
    "histogram": ["_bucket", "_sum", "_count"],
    "summary": ["_sum", "_count"],
}


def registered_families() -> dict[str, set[str]]:
    """{family name: its sample names} for every registered metric, whether or not it has samples yet.
    prometheus_client names a counter family without `_total` and exposes its samples with it."""
    return {
        family.name: {family.name + suffix for suffix in _SAMPLE_SUFFIXES.get(family.type, [""])}
        for family in REGISTRY.collect()
    }


def registered_sample_names() -> set[str]:
    return set().union(*registered_families().values())


def test_dashboard_has_schema_version_and_a_prometheus_datasource_variable():
    dashboard = load_dashboard()

    assert 36 <= dashboard["schemaVersion"] <= 41
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in query_panels(dashboard):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]


def test_every_panel_has_a_prometheus_query_target():
    panels = query_panels(load_dashboard())

    assert panels
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_panel_ids_are_unique():
    top = load_dashboard()["panels"]
    nested = [child["id"] for row in top if row["type"] == "row" for child in row["panels"]]
    ids = [panel["id"] for panel in top] + nested

    assert len(ids) == len(set(ids))


def test_dashboard_has_the_panels_operators_need():
    titles = [panel["title"] for panel in query_panels(load_dashboard())]

    for wanted in EXPECTED_PANELS:
        assert any(title.startswith(wanted) for title in titles), f"no panel {wanted!r} in {titles}"


def test_promql_reader_finds_metric_names_but_not_functions_labels_or_variables():
    expr = (
        'histogram_quantile(0.95, sum by (le, view) (rate(a_bucket{job=~"$job", x="b_total"}[$__rate_interval])))'
        " / on (view) group_left sum(increase(c_total[5m] offset 1h)) * 60 > bool 1e3"
    )

    assert metric_names(expr) == {"a_bucket", "c_total"}


def test_dashboard_queries_are_valid_promql(tmp_path):
    # promtool parses every expression when it checks a rules file: use Grafana's queries as
    # recording rules, with the dashboard variables filled in as Grafana would.
    promtool = require_binary("promtool")
    lines = ["groups:", "  - name: grafana-queries", "    rules:"]
    for i, expr in enumerate(dashboard_queries(load_dashboard())):
        if expr.startswith("label_values("):
            continue
        promql = json.dumps(grafana_variables_substituted(expr))  # a JSON string is a valid YAML scalar
        lines += [f"      - record: grafana:query_{i}", f"        expr: {promql}"]
    rules = tmp_path / "grafana_queries.yml"
    rules.write_text("\n".join(lines) + "\n")

    result = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def exported_metrics(db, request, redis_client) -> set[str]:
    """Sample names in the app's /metrics after exercising the paths that create labelled series."""
    org = factories.organization()
    unit = factories.unit(org)
    factories.device(unit)
    factories.reading(unit, 4.0)
    client = Client()
    client.force_login(factories.member(org))
    stats_url = f"/api/orgs/{org.id}/stats"

    assert client.get(stats_url).status_code == 200  # miss, recompute, set
    assert client.get(stats_url).status_code == 200  # hit
    assert cache.invalidate_org(org.id) is not None
    assert cache.invalidate_keys([cache.cache_key(QueryType.STATS, org.id)]) is not None

    # A stale set: an invalidation lands while the value is being computed.
    def compute_while_invalidated() -> bytes:
        cache.invalidate_org(org.id)
        return b"{}"

    cache.read_through(cache.cache_key(QueryType.DEVICES_ONLINE, org.id), compute_while_invalidated)

    # A single-flight wait: another request holds the lock briefly and stores nothing.
    waited_key = cache.cache_key(QueryType.UNITS_STATUS, org.id)
    redis_client.set(cache.lock_key(waited_key), "someone-else", px=50)
    cache.read_through(waited_key, lambda: b"{}")

    # A value rebuilt from the state kept beside it after the value expired.
    trend_key = cache.cache_key(QueryType.TEMPERATURE_TRENDS, org.id, unit.id)
    redis_client.set(f"dashmeta:state:{trend_key}", b"kept")
    assert cache.read_through(trend_key, lambda: b"computed", lambda held: (b"rebuilt", held)) == b"rebuilt"

    # Cache errors, then the breaker opening and skipping operations.
    request.getfixturevalue("redis_down")
    for _ in range(cache.BREAKER_FAILURE_THRESHOLD + 2):
        assert client.get(stats_url).status_code == 200

    with override_settings(METRICS_TOKEN=""):
        response = client.get("/metrics")
    assert response.status_code == 200
    return sample_names(response.content.decode())


def test_the_exercised_paths_export_the_labelled_cache_series(exported_metrics):
    text_names = exported_metrics

    for name in [
        "dashboard_cache_hit_total",
        "dashboard_cache_miss_total",
        "dashboard_cache_error_total",
        "dashboard_cache_stale_set_refused_total",
        "dashboard_cache_singleflight_wait_total",
        "dashboard_cache_breaker_skipped_total",
        "dashboard_cache_invalidation_duration_seconds_bucket",
    ]:
        assert name in text_names


def test_every_metric_in_the_dashboard_and_the_alerts_exists_in_the_apps_metrics(exported_metrics):
    queried = queried_metric_names()
    assert "dashboard_cache_hit_total" in queried and "django_db_execute_total" in queried

    missing = queried - exported_metrics
    assert REALTIME_METRICS <= queried, "REALTIME_METRICS lists a metric no query uses: update the list"
    if importlib.util.find_spec("realtime.broadcast") is None:
        assert missing <= REALTIME_METRICS, f"queried but not exported: {sorted(missing - REALTIME_METRICS)}"
        return
    for module in REALTIME_MODULES:
        importlib.import_module(module)
    assert missing - REALTIME_METRICS == set(), f"queried but not exported: {sorted(missing - REALTIME_METRICS)}"
    assert missing - registered_sample_names() == set(), "realtime metrics queried but not registered"


def test_every_dashboard_metric_the_app_registers_has_a_panel():
    for module in REALTIME_MODULES:
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)
    queried = queried_metric_names()
    families = {name: samples for name, samples in registered_families().items() if name.startswith("dashboard_")}

    assert families
    unshown = {family for family, samples in families.items() if not samples & queried}
    assert unshown == set(), f"app metrics with no Grafana panel: {sorted(unshown)}"
