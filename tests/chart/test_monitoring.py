"""The chart's monitoring objects against what they point at: the PrometheusRule is the rule
file's groups (charts/mysqlops/files/alerts.rules.yaml, tested by tests/alerts), the
ServiceMonitor scrapes every metrics port of the Services under the job names those rules use,
and each port is the one its process is told to serve (docs/observability.md)."""

import re
from collections.abc import Mapping
from typing import Any

import pytest
import yaml

from activities.kubernetes import objects
from activities.local.scrape import (
    AGENT_JOB,
    HAPROXY_JOB,
    MYSQLD_JOB,
    WATCHER_JOB,
    WORKER_JOB,
    WORKER_SDK_JOB,
)
from api.cluster import MySQLClusterSpec
from api.layout import ClusterRef
from tests.alerts.test_rules import RULES_FILE, alerts
from tests.chart.rbac import RELEASE, render
from tests.chart.test_chart import (
    by_component,
    containers,
    env_of,
    network_policy,
    of_kind,
    selects,
)

MONITORING = {
    "serviceMonitor": "ServiceMonitor",
    "prometheusRule": "PrometheusRule",
    "grafanaDashboard": "ConfigMap",
}
ALL_ON: dict[str, Any] = {
    "metrics": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "prometheusRule": {"enabled": True, "labels": {"role": "alert-rules"}},
    }
}
# (component, port name) -> the scrape job the ServiceMonitor must give its targets.
JOBS = {
    ("worker", "metrics"): WORKER_JOB,
    ("worker", "sdk-metrics"): WORKER_SDK_JOB,
    ("operator", "metrics"): WATCHER_JOB,
}
# port name -> (component, variable) of the process serving it, and the default port.
ADDRESSES = {
    ("worker", "metrics"): ("MYSQLOPS_METRICS_ADDRESS", 9464),
    ("worker", "sdk-metrics"): ("MYSQLOPS_SDK_METRICS_ADDRESS", 9463),
    ("operator", "metrics"): ("MYSQLOPS_METRICS_ADDRESS", 9465),
}


@pytest.fixture(scope="module")
def monitored() -> list[dict[str, Any]]:
    return render(ALL_ON)


def component_of(doc: Mapping[str, Any]) -> str:
    component: str = doc["metadata"]["labels"]["app.kubernetes.io/component"]
    return component


def relabel(labels: Mapping[str, str], configs: list[dict[str, Any]]) -> dict[str, str]:
    """Prometheus relabelling, the `replace` action only (anchored regex, $n references)."""
    result = dict(labels)
    for config in configs:
        assert config.get("action", "replace") == "replace", config
        value = config.get("separator", ";").join(
            result.get(name, "") for name in config.get("sourceLabels", [])
        )
        match = re.fullmatch(config.get("regex", "(.*)"), value)
        if match is not None:
            template = re.sub(r"\$\{?(\d+)\}?", r"\\g<\1>", config.get("replacement", "$1"))
            result[config["targetLabel"]] = match.expand(template)
    return result


def scrape_jobs(manifests: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """(component, port name) -> job, for every Service port the ServiceMonitor scrapes: the
    Service's name (the Prometheus Operator's default), then the endpoint's relabelings."""
    [monitor] = of_kind(manifests, "ServiceMonitor")
    jobs = {}
    for service in of_kind(manifests, "Service"):
        if not selects(monitor["spec"]["selector"], service["metadata"]["labels"]):
            continue
        meta = {
            "__meta_kubernetes_service_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", key): value
            for key, value in service["metadata"]["labels"].items()
        }
        names = [port["name"] for port in service["spec"]["ports"]]
        for endpoint in monitor["spec"]["endpoints"]:
            if endpoint["port"] in names:
                target = {**meta, "job": service["metadata"]["name"]}
                labels = relabel(target, endpoint.get("relabelings", []))
                jobs[component_of(service), endpoint["port"]] = labels["job"]
    return jobs


# -- the PrometheusRule ----------------------------------------------------------------------


def test_prometheus_rule_is_the_rules_file(monitored: list[dict[str, Any]]) -> None:
    [rule] = of_kind(monitored, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["role"] == "alert-rules"
    assert rule["spec"] == yaml.safe_load(RULES_FILE.read_text())


# -- the ServiceMonitor, the Services, the pods ----------------------------------------------


def test_service_monitor_scrapes_every_metrics_port(monitored: list[dict[str, Any]]) -> None:
    """Each endpoint names a port some selected Service has, and each port of those Services
    is scraped."""
    [monitor] = of_kind(monitored, "ServiceMonitor")
    services = [
        service
        for service in of_kind(monitored, "Service")
        if selects(monitor["spec"]["selector"], service["metadata"]["labels"])
    ]
    offered = {
        (component_of(service), port["name"])
        for service in services
        for port in service["spec"]["ports"]
    }
    assert offered == set(JOBS)
    endpoints = [endpoint["port"] for endpoint in monitor["spec"]["endpoints"]]
    assert len(endpoints) == len(set(endpoints)), endpoints
    assert set(endpoints) == {name for _, name in offered}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["path"] == "/metrics"


def test_scrape_jobs_are_the_ones_the_rules_use(monitored: list[dict[str, Any]]) -> None:
    """Whatever the release is called, the targets get the job names of the local stack's
    scrape configuration, which the alert rules select by."""
    assert scrape_jobs(monitored) == JOBS
    in_rules = {
        job
        for rule in alerts()
        for jobs in re.findall(r'job=~?"([^"]+)"', rule["expr"])
        for job in jobs.split("|")
    }
    assert set(JOBS.values()) <= in_rules


def test_service_ports_reach_the_container_ports(monitored: list[dict[str, Any]]) -> None:
    """A Service's targetPort is a named port of the pods it selects, and that port is the one
    the process is told to serve on (MYSQLOPS_*METRICS_ADDRESS)."""
    deployments = by_component(monitored, "Deployment")
    for service in of_kind(monitored, "Service"):
        component = component_of(service)
        pod = deployments[component]["spec"]["template"]
        assert selects({"matchLabels": service["spec"]["selector"]}, pod["metadata"]["labels"])
        [container] = pod["spec"]["containers"]
        ports = {port["name"]: port for port in container["ports"]}
        env = env_of(container)
        for port in service["spec"]["ports"]:
            target = ports[port["targetPort"]]
            assert target["protocol"] == port["protocol"] == "TCP"
            variable, default = ADDRESSES[component, port["name"]]
            assert target["containerPort"] == port["port"] == default
            assert env[variable] == f"0.0.0.0:{default}"


def test_metrics_ports_follow_the_values() -> None:
    values = {"metrics": {"ports": {"worker": 19464, "workerSdk": 19463, "operator": 19465}}}
    manifests = render(values)
    env = {component: env_of(container) for component, container in pod_containers(manifests)}
    assert env["worker"]["MYSQLOPS_METRICS_ADDRESS"] == "0.0.0.0:19464"
    assert env["worker"]["MYSQLOPS_SDK_METRICS_ADDRESS"] == "0.0.0.0:19463"
    assert env["operator"]["MYSQLOPS_METRICS_ADDRESS"] == "0.0.0.0:19465"
    services = by_component(manifests, "Service")
    assert {p["name"]: p["port"] for p in services["worker"]["spec"]["ports"]} == {
        "metrics": 19464,
        "sdk-metrics": 19463,
    }
    assert {p["name"]: p["port"] for p in services["operator"]["spec"]["ports"]} == {
        "metrics": 19465
    }


def pod_containers(manifests: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    by_name = {
        doc["metadata"]["name"]: component_of(doc) for doc in of_kind(manifests, "Deployment")
    }
    return [(by_name[name], container) for name, _, container in containers(manifests)]


def test_no_process_gets_the_old_port_variable(monitored: list[dict[str, Any]]) -> None:
    for _, container in pod_containers(monitored):
        assert "MYSQLOPS_METRICS_PORT" not in env_of(container)


def test_network_policy_admits_every_metrics_port() -> None:
    manifests = render({"networkPolicy": {"enabled": True}})
    policy = network_policy(manifests, f"{RELEASE}-mysqlops")  # the chart's pods'
    admitted = {port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]}
    served = {
        port["targetPort"]
        for service in of_kind(manifests, "Service")
        for port in service["spec"]["ports"]
    }
    assert served <= admitted


# -- toggles ---------------------------------------------------------------------------------


def test_monitoring_toggles_off_render_nothing(monitored: list[dict[str, Any]]) -> None:
    off = render({"metrics": {key: {"enabled": False} for key in MONITORING}})
    assert not [doc for doc in off if doc["kind"] in MONITORING.values()]
    assert off == render()
    assert {doc["kind"] for doc in monitored} >= {"ServiceMonitor", "PrometheusRule"}
    # Services and ports stay: a Prometheus of your own may scrape them without the toggles.
    assert of_kind(off, "Service") == of_kind(monitored, "Service")


# -- the PodMonitor: the clusters' pods ----------------------------------------------------------


def test_pod_monitor_scrapes_the_clusters_pods_as_the_local_stack_does(
    monitored: list[dict[str, Any]],
) -> None:
    """The pods the Kubernetes runtime builds (its own builders): every metrics port of theirs
    is scraped, under the job names and the cluster_namespace/cluster/node labels of the local
    stack's scrape files (activities/local/scrape.py), which the rules select by."""
    [monitor] = of_kind(monitored, "PodMonitor")
    assert monitor["spec"]["namespaceSelector"] == {"any": True}  # clusters live anywhere
    cluster = ClusterRef(namespace="shop", name="orders")
    owner = objects.Owner(name="orders", uid="5f1e2d3c-0000-4000-8000-000000000001")
    settings = objects.PodSettings(image="registry.example/mysqlops:1.0", temporal_address="t:1")
    templates = [
        objects.statefulset(cluster, MySQLClusterSpec(), owner, settings)["spec"]["template"],
        objects.haproxy_deployment(cluster, owner, settings, "")["spec"]["template"],
    ]
    ids = {"cluster_namespace": "shop", "cluster": "orders"}
    found = {}
    for template, pod in zip(templates, ["orders-0", "orders-haproxy-5d9c-x2"], strict=True):
        labels = template["metadata"]["labels"]
        assert selects(monitor["spec"]["selector"], labels), labels
        meta = {
            "__meta_kubernetes_namespace": "shop",
            "__meta_kubernetes_pod_name": pod,
            **{
                "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", key): value
                for key, value in labels.items()
            },
        }
        ports = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            if endpoint["port"] in ports:
                target = relabel(meta, endpoint["relabelings"])
                found[endpoint["port"]] = {k: target.get(k) for k in ("job", *ids, "node")}
    assert found == {
        "agent-metrics": {"job": AGENT_JOB, **ids, "node": "orders-0"},
        "exporter": {"job": MYSQLD_JOB, **ids, "node": "orders-0"},
        "stats": {"job": HAPROXY_JOB, **ids, "node": None},
    }
    in_rules = {job for rule in alerts() for job in re.findall(r'job=~?"([^"]+)"', rule["expr"])}
    assert {AGENT_JOB, MYSQLD_JOB} <= in_rules
    # One namespace watched: its pods only; the local runtime has no pods to scrape.
    watched = render({**ALL_ON, "watchNamespace": "shop"})
    [monitor] = of_kind(watched, "PodMonitor")
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["shop"]}
    local = {**ALL_ON, "runtime": "local", "workers": {"replicas": 1}}
    assert not of_kind(render(local), "PodMonitor")
