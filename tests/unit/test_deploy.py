"""deploy/: dashboards, recording and alert rules name only metrics that exist, parse as
PromQL, and pass promtool's checks and unit tests. (That they return data from a running
system is tests/system/test_observability.py.)"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable

import pytest
import yaml
from faststream.prometheus.container import MetricsContainer
from prometheus_client import CollectorRegistry

from shared.observability.metrics import HubSimulatorMetrics, Metrics
from tests.deploy_queries import (
    COMPOSE_PROMETHEUS,
    DASHBOARDS,
    GRAFANA_PROVISIONING,
    PROMETHEUS,
    RULE_FILES,
    RULE_TESTS,
    dashboard_queries,
    load_dashboard,
    metric_names,
    rule_test_series,
    rules,
    signals,
)

# Series Prometheus makes itself: scrape health and the alerts' own state.
PROMETHEUS_BUILTINS = {"up", "ALERTS", "ALERTS_FOR_STATE"}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
    "summary": ("", "_count", "_sum", "_created"),
}


def sample_names(registry: CollectorRegistry) -> set[str]:
    """Every series name a registry's metrics can expose, labelled or not yet used."""
    return {
        family.name + suffix for family in registry.collect() for suffix in SUFFIXES[family.type]
    }


def declared() -> set[str]:
    ours, hub, transport = CollectorRegistry(), CollectorRegistry(), CollectorRegistry()
    Metrics(ours)
    HubSimulatorMetrics(hub)
    MetricsContainer(transport, custom_label_names=())
    return sample_names(ours) | sample_names(hub) | sample_names(transport)


def recorded() -> set[str]:
    return {rule.record for rule in rules() if rule.record}


def unknown_names(exprs: Iterable[tuple[str, str]], known: set[str]) -> list[str]:
    return [
        f"{where}: {name}" for where, expr in exprs for name in sorted(metric_names(expr) - known)
    ]


def test_the_metric_names_of_an_expression_are_found_wherever_they_are_nested() -> None:
    expr = (
        'sum by (a) (rate(x_total{b="c"}[5m])) / on () group_left y'
        " and min_over_time(z[10m:1m]) > -w unless {__name__='v'}"
    )
    assert metric_names(expr) == {"x_total", "y", "z", "w", "v"}


def test_every_metric_a_dashboard_or_rule_names_is_declared_or_recorded() -> None:
    known = declared() | recorded() | PROMETHEUS_BUILTINS
    exprs = [(q.where, q.expr) for q in dashboard_queries()]
    exprs += [(r.where, r.expr) for r in rules()]
    exprs += [(q.where, q.expr) for q in rule_test_series()]
    named = set().union(*(metric_names(expr) for _, expr in exprs))
    assert len(named) > 30  # the files were read, and every query in them
    assert unknown_names(exprs, known) == []


# Declared, and read where they are exported rather than on a dashboard or in a rule.
UNSHOWN = {
    "baocao_stage_messages_received_total",  # processed (by outcome) and failures tell more
    "baocao_hubsim_requests_in_progress",  # the simulator's own gauge, for its debugging
}


def test_every_domain_metric_is_on_a_dashboard_or_in_a_rule() -> None:
    ours, hub = CollectorRegistry(), CollectorRegistry()
    Metrics(ours)
    HubSimulatorMetrics(hub)
    used = set().union(*(metric_names(q.expr) for q in dashboard_queries()))
    used |= set().union(*(metric_names(r.expr) for r in rules()))
    unshown = {
        family.name + SUFFIXES[family.type][0]
        for family in (*ours.collect(), *hub.collect())
        if not {family.name + suffix for suffix in SUFFIXES[family.type]} & used
    }
    assert unshown == UNSHOWN


def test_a_name_missing_from_the_metrics_module_is_reported_with_where_it_is_used() -> None:
    exprs = [("board.json panel 'x' A", "rate(baocao_reports_recieved_total[5m])")]
    assert unknown_names(exprs, declared()) == [
        "board.json panel 'x' A: baocao_reports_recieved_total"
    ]


def test_every_series_recorded_is_named_level_metric_operation_under_baocao() -> None:
    names = [rule.record for rule in rules() if rule.record]
    assert len(names) == len(set(names))
    assert all(n.startswith("baocao:") and len(n.split(":")) == 3 for n in names), names


def test_every_alert_says_how_bad_what_and_why_and_waits_before_firing() -> None:
    alerts = [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    assert {a["alert"] for a in alerts} >= {
        "BaocaoServiceDown",
        "BaocaoReportsStuck",
        "BaocaoHubOutOfSync",
        "BaocaoDeadLettersGrowing",
        "BaocaoConsumerLagHigh",
        "BaocaoCompletenessLowNearDeadline",
        "BaocaoServiceAbsent",
        "BaocaoConsumerLagUnmeasured",
        "BaocaoHubSyncSlow",
        "BaocaoDeadlineMissed",
    }
    for alert in alerts:
        assert alert["labels"]["severity"] in ("critical", "warning"), alert["alert"]
        assert alert["annotations"]["summary"], alert["alert"]
        assert alert["annotations"]["description"], alert["alert"]
        assert alert.get("for"), alert["alert"]
        assert signals(alert["expr"]), alert["alert"]


def test_an_alert_without_its_thresholds_is_the_series_it_watches() -> None:
    expr = "a:b:c < 0.8 and on (regime) d:e:f < 2 * 86400 and on (regime) (d:e:f > 0)"
    assert signals(expr) == ["a:b:c", "d:e:f", "d:e:f"]
    assert signals("up{job=~'x|y'} == 0") == ['up{job=~"x|y"}']
    assert signals("sum by (g) (a:b:c > 0 unless on (g) changes(d:e:f[5m]) > 0)") == [
        "a:b:c",
        "changes(d:e:f[5m])",
    ]
    assert signals("sum(rate(x_total[5m])) > 1") == ["sum(rate(x_total[5m]))"]
    assert signals('absent(up{job="x"}) or absent(a:b:c{job="y"})') == [
        'up{job="x"}',
        'a:b:c{job="y"}',
    ]


def test_dashboards_are_grafana_json_on_the_provisioned_datasource() -> None:
    datasources = yaml.safe_load(
        (GRAFANA_PROVISIONING / "datasources" / "prometheus.yml").read_text()
    )["datasources"]
    (uid,) = [d["uid"] for d in datasources]
    boards = [load_dashboard(path) for path in DASHBOARDS]
    assert {b["uid"] for b in boards} == {
        "baocao-pipeline",
        "baocao-regimes",
        "baocao-rejections",
        "baocao-hub",
    }
    for board in boards:
        panels = board["panels"]
        assert len({p["id"] for p in panels}) == len(panels), board["uid"]
        for panel in panels:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, panel["title"]
            assert panel["description"], panel["title"]
            assert panel["datasource"]["uid"] == uid, panel["title"]
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == uid, panel["title"]
    provider = yaml.safe_load((GRAFANA_PROVISIONING / "dashboards" / "baocao.yml").read_text())
    assert provider["providers"][0]["type"] == "file"


def test_every_dashboard_query_parses_as_promql_once_grafana_fills_its_variables() -> None:
    queries = list(dashboard_queries())
    assert len(queries) > 40
    for query in queries:
        assert "$" not in query.expr, query.where
        metric_names(query.expr)  # raises on a syntax error


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed (Debian: apt-get install prometheus)", pytrace=False)
    return subprocess.run([binary, *args], capture_output=True, text=True, check=False)


def test_promtool_accepts_the_rules_and_the_scrape_configs() -> None:
    checked = promtool("check", "rules", *map(str, RULE_FILES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The compose file's rule glob names a path inside the container: it matches nothing
    # here, which promtool accepts, and the rules are checked above.
    for config in (PROMETHEUS / "prometheus.local.yml", COMPOSE_PROMETHEUS):
        result = promtool("check", "config", str(config))
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_promtool_unit_tests_of_the_rules_pass() -> None:
    assert len(RULE_TESTS) >= 2
    result = promtool("test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
