"""The chart ships the Grafana dashboard: with metrics.grafanaDashboard.enabled, a ConfigMap
labelled for Grafana's dashboard sidecar whose data is the committed JSON, byte for byte;
without it, nothing. (tests/unit/test_dashboard.py checks the JSON itself.)"""

import json
from pathlib import Path
from typing import Any

from tests.chart.rbac import CHART, NAMESPACE, RELEASE, render, template

DASHBOARD = CHART / "dashboards" / "mysqlops.json"
TEMPLATE = "templates/grafana-dashboard.yaml"


def on(**settings: Any) -> dict[str, Any]:
    return {"metrics": {"grafanaDashboard": {"enabled": True, **settings}}}


def config_maps(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [doc for doc in render(values) if doc["kind"] == "ConfigMap"]


def test_enabled_renders_the_committed_dashboard_for_the_sidecar() -> None:
    [config_map] = config_maps(on())
    meta = config_map["metadata"]
    assert meta["name"] == f"{RELEASE}-mysqlops-dashboard"
    assert meta["namespace"] == NAMESPACE
    assert meta["labels"]["grafana_dashboard"] == "1"
    assert meta["labels"]["app.kubernetes.io/instance"] == RELEASE
    committed = Path(DASHBOARD).read_text(encoding="utf-8")
    assert config_map["data"] == {"mysqlops.json": committed}
    assert json.loads(config_map["data"]["mysqlops.json"])["uid"] == "mysqlops"


def test_labels_and_namespace_from_values() -> None:
    [config_map] = config_maps(on(namespace="monitoring", labels={"team": "databases"}))
    meta = config_map["metadata"]
    assert meta["namespace"] == "monitoring"
    assert meta["labels"]["team"] == "databases"
    assert meta["labels"]["grafana_dashboard"] == "1"
    # A sidecar configured for another label value: the values' label wins, once.
    [config_map] = config_maps(on(labels={"grafana_dashboard": "true"}))
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "true"
    result = template(on(labels={"grafana_dashboard": "true"}), "--show-only", TEMPLATE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("grafana_dashboard:") == 1


def test_disabled_renders_nothing() -> None:
    assert config_maps({}) == []
    assert config_maps({"metrics": {"grafanaDashboard": {"enabled": False}}}) == []
    result = template({}, "--show-only", TEMPLATE)
    assert result.returncode != 0 and "could not find template" in result.stderr
