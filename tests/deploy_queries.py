"""The PromQL of `deploy/`: every dashboard panel's and variable's query, every recording
and alert rule, read from the files operators install, for tests to check and to run.

Grafana's own variables become what Grafana would send (`$__rate_interval` a range that
holds several scrapes, a dashboard variable set to "All" its `.*`), so that the query run
here is the query the panel runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser as promql
import yaml

from shared.settings import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
RULE_FILES = tuple(sorted((PROMETHEUS / "rules").glob("*.yml")))
RULE_TESTS = tuple(sorted((PROMETHEUS / "tests").glob("*.test.yml")))
DASHBOARDS = tuple(sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")))
GRAFANA_PROVISIONING = DEPLOY / "grafana" / "provisioning"
COMPOSE_PROMETHEUS = DEPLOY / "compose" / "prometheus.yml"

GRAFANA_BUILTINS = {"__rate_interval": "1m", "__range": "1h", "__interval": "15s"}
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_LABEL_VALUES = re.compile(r"^label_values\((?P<expr>.+),\s*(?P<label>\w+)\)$", re.DOTALL)
COMPARISONS = {"==", "!=", ">", "<", ">=", "<="}
SET_OPERATORS = {"and", "or", "unless"}
ABSENCE = {"absent", "absent_over_time"}


@dataclass(frozen=True)
class Query:
    """A query and where it comes from, to name it when it fails."""

    where: str
    expr: str


@dataclass(frozen=True)
class Rule:
    where: str
    expr: str
    record: str | None = None
    alert: str | None = None


def load_dashboard(path: Path) -> dict[str, Any]:
    board: dict[str, Any] = json.loads(path.read_text())
    return board


def grafana_to_promql(expr: str, variables: dict[str, str]) -> str:
    """What Grafana sends for `expr` with every dashboard variable at "All"."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name in GRAFANA_BUILTINS:
            return GRAFANA_BUILTINS[name]
        if name in variables:
            return variables[name]
        raise AssertionError(f"unknown Grafana variable ${name} in {expr!r}")

    return _VARIABLE.sub(value, expr)


def dashboard_queries() -> Iterator[Query]:
    for path in DASHBOARDS:
        board = load_dashboard(path)
        variables = {v["name"]: v.get("allValue", ".*") for v in board["templating"]["list"]}
        for variable in board["templating"]["list"]:
            match = _LABEL_VALUES.match(variable["definition"])
            assert match, f"{path.name}: variable {variable['name']} is not label_values(...)"
            yield Query(
                f"{path.name} variable {variable['name']}",
                grafana_to_promql(match["expr"], variables),
            )
        for panel in board["panels"]:
            for target in panel["targets"]:
                yield Query(
                    f"{path.name} panel {panel['title']!r} {target['refId']}",
                    grafana_to_promql(target["expr"], variables),
                )


def rules() -> Iterator[Rule]:
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                name = rule.get("record") or rule.get("alert")
                yield Rule(
                    f"{path.name} {group['name']} {name}",
                    rule["expr"],
                    record=rule.get("record"),
                    alert=rule.get("alert"),
                )


def signals(expr: str) -> list[str]:
    """The series an alert's condition is about: the expression without its thresholds,
    each side of `and`/`or`/`unless` on its own (inside an aggregation of them too), and
    what an `absent()` looks for. They must have data for the alert to ever fire (or, for
    `absent()`, to ever be quiet: a selector that matches nothing in a running system is
    misspelt)."""

    def walk(node: promql.Expr) -> list[str]:
        if isinstance(node, promql.ParenExpr):
            return walk(node.expr)
        if isinstance(node, promql.Call) and node.func.name in ABSENCE:
            return walk(node.args[0])
        if isinstance(node, promql.AggregateExpr) and filters(node.expr):
            return walk(node.expr)  # what is summed up is filtered: the operands are watched
        if isinstance(node, promql.BinaryExpr) and str(node.op) in COMPARISONS | SET_OPERATORS:
            return walk(node.lhs) + walk(node.rhs)
        text = str(node).replace("{}", "")  # the parser writes `name{}` for a bare name
        return [text] if metric_names(text) else []  # a threshold is not a series

    return walk(promql.parse(expr))


def filters(node: promql.Expr) -> bool:
    """Whether an expression keeps only some of its series (a threshold, `and`, ...)."""
    while isinstance(node, promql.ParenExpr):
        node = node.expr
    return isinstance(node, promql.BinaryExpr) and str(node.op) in COMPARISONS | SET_OPERATORS


def metric_names(expr: str) -> set[str]:
    """Every metric or recorded series named in a PromQL expression."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, promql.VectorSelector):
            if node.name:
                found.add(node.name)
            for matcher in node.matchers.matchers:
                if matcher.name == "__name__":
                    found.add(matcher.value)
        elif isinstance(node, promql.MatrixSelector):
            walk(node.vector_selector)
        elif isinstance(node, promql.BinaryExpr):
            walk(node.lhs)
            walk(node.rhs)
        elif isinstance(node, promql.Call):
            for arg in node.args:
                walk(arg)
        elif isinstance(node, promql.AggregateExpr):
            walk(node.expr)
            if node.param is not None:
                walk(node.param)
        elif isinstance(node, promql.ParenExpr | promql.UnaryExpr | promql.SubqueryExpr):
            walk(node.expr)

    walk(promql.parse(expr))
    return found


def rule_test_series() -> Iterator[Query]:
    """The input series of the promtool rule tests: they must be real metric names too."""
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for series in test.get("input_series", []):
                yield Query(path.name, series["series"])
