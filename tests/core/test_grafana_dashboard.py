"""contrib/grafana/owlery.json: every metric its PromQL names is one the daemons export
(owlery.metrics' catalogue, as a real scrape shows it), with labels that metric has."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from owlery import metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "contrib" / "grafana" / "owlery.json"

# PromQL words that are not metric names: aggregation keywords and modifiers.
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
             "unless", "offset"}
# Labels every series has once scraped (Prometheus adds job and instance), and histogram buckets'.
_TARGET_LABELS = {"job", "instance", "__name__"}
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def expressions(dashboard: dict) -> list[str]:
    out = []

    def walk(panels):
        for panel in panels:
            out.extend(t["expr"] for t in panel.get("targets", ()) if t.get("expr"))
            walk(panel.get("panels", ()))
    walk(dashboard["panels"])
    for variable in dashboard.get("templating", {}).get("list", ()):
        query = variable.get("query")
        text = query.get("query") if isinstance(query, dict) else query
        if text:
            out.append(re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", text))
    return out


def parse(expr: str) -> tuple[list[tuple[str, set[str]]], set[str]]:
    """([(metric name, label names in its selector)], label names in by/without clauses)."""
    text = re.sub(r"\$\w+|\$\{\w+\}", "x", expr)          # Grafana variables
    text = re.sub(r"\[[^\]]*\]", "", text)                   # range selectors
    selectors: list[tuple[str, set[str]]] = []
    grouping: set[str] = set()
    for m in re.finditer(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", text):
        grouping |= {g.strip() for g in m.group(1).split(",") if g.strip()}
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    for m in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^}]*)\}", text):
        labels = {lm.group(1) for lm in re.finditer(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"", m.group(2))}
        selectors.append((m.group(1) or "", labels))
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\"[^\"]*\"", " ", text)
    named = {name for name, _ in selectors}
    for m in _IDENT.finditer(text):
        word = m.group(0)
        rest = text[m.end():].lstrip()
        if word in _KEYWORDS or rest.startswith("(") or word in named:
            continue
        selectors.append((word, set()))
    return selectors, grouping


def exported() -> dict[str, set[str]]:
    """{series name: its label names} for every series the catalogue declares, after checking
    that a scrape of enabled metrics shows each declared metric."""
    metrics.enable()
    try:
        body = metrics.scrape()[0].decode()
    finally:
        metrics.disable()
    typed = set(re.findall(r"^# TYPE (\S+) ", body, re.M))
    out = {}
    for name, spec in metrics.CATALOGUE.items():
        assert name in typed, f"{name} is declared but a scrape does not show it"
        extra = {"le"} if spec.kind == "histogram" else set()
        for series in spec.sample_names():
            out[series] = set(spec.labels) | (extra if series.endswith("_bucket") else set())
    return out


def test_the_parser_finds_names_and_labels():
    selectors, grouping = parse('sum by (le, stage) (rate(owlery_a_bucket{instance=~"$i", x="1"}[5m])) '
                                '/ ignoring(stage) owlery_b')
    assert selectors == [("owlery_a_bucket", {"instance", "x"}), ("owlery_b", set())]
    assert grouping == {"le", "stage"}


def test_every_metric_in_the_dashboard_is_exported():
    dashboard = json.loads(DASHBOARD.read_text())
    series = exported()
    exprs = expressions(dashboard)
    assert len(exprs) >= 15
    used = set()
    for expr in exprs:
        selectors, grouping = parse(expr)
        names = [name for name, _ in selectors if name]
        assert names or "__name__" in str(selectors), expr
        for name, labels in selectors:
            if not name:
                assert labels <= _TARGET_LABELS, expr
                continue
            assert name in series, f"{name} (in {expr!r}) is not exported by any daemon"
            assert labels <= series[name] | _TARGET_LABELS, f"{expr!r}: {labels - series[name]} not labels of {name}"
            used.add(name)
        known = set().union(*(series[name] for name in names)) | _TARGET_LABELS
        assert grouping <= known, f"{expr!r}: grouping by {grouping - known}"
    # The dashboard shows every kind of thing the issue asked for.
    for family in ("owlery_policyd_decisions_total", "owlery_greylist_triplets_total",
                   "owlery_directory_cache_lookups_total", "owlery_milter_symbols_total",
                   "owlery_milter_stage_duration_seconds_bucket", "owlery_milter_message_size_bytes_bucket",
                   "owlery_delivery_results_total", "owlery_backend_request_duration_seconds_bucket",
                   "owlery_backend_errors_total", "owlery_quarantine_messages"):
        assert family in used, family


@pytest.mark.parametrize("expr", ['rate(owlery_no_such_metric_total[5m])',
                                  'sum by (address) (rate(owlery_policyd_decisions_total[5m]))'])
def test_a_wrong_expression_is_caught(expr):
    series = exported()
    selectors, grouping = parse(expr)
    bad_name = any(name not in series for name, _ in selectors)
    bad_group = not grouping <= set().union(*(series.get(n, set()) for n, _ in selectors)) | _TARGET_LABELS
    assert bad_name or bad_group
