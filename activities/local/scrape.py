"""What a local Prometheus scrapes: one file_sd target file per cluster and job, under
`<home>/prometheus/targets/<job>/`, rewritten when the cluster's layout changes and removed with
the cluster. Prometheus rereads them by itself; `workers/prometheus.py` runs it."""

import json
from collections.abc import Callable
from pathlib import Path

from activities.local.ports import SlotPorts
from activities.runtime import ClusterLayout, ClusterRef

WORKER_JOB = "mysqlops-worker"
WORKER_SDK_JOB = "mysqlops-worker-sdk"
WATCHER_JOB = "mysqlops-watcher"
AGENT_JOB = "mysqlops-agent"
MYSQLD_JOB = "mysqld"
HAPROXY_JOB = "haproxy"
CLUSTER_JOBS = (AGENT_JOB, MYSQLD_JOB, HAPROXY_JOB)
JOBS = (WORKER_JOB, WORKER_SDK_JOB, WATCHER_JOB, *CLUSTER_JOBS)


def targets_dir(home: Path) -> Path:
    return home / "prometheus" / "targets"


def _file(home: Path, job: str, cluster: ClusterRef) -> Path:
    return targets_dir(home) / job / f"{cluster.namespace}.{cluster.name}.json"


def write_json_atomically(path: Path, data: object) -> None:
    """Prometheus may read at any moment: it sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=1, sort_keys=True)
    if path.exists() and path.read_text() == text:
        return
    partial = path.with_suffix(".partial")
    partial.write_text(text)
    partial.replace(path)


def write_cluster_targets(home: Path, layout: ClusterLayout, ports: SlotPorts) -> None:
    cluster = layout.cluster
    ids = {"cluster_namespace": cluster.namespace, "cluster": cluster.name}

    def per_node(port_of: Callable[[int], int]) -> list[dict[str, object]]:
        return [
            {"targets": [f"{n.host}:{port_of(n.ordinal)}"], "labels": {**ids, "node": n.name}}
            for n in layout.nodes
        ]

    write_json_atomically(_file(home, AGENT_JOB, cluster), per_node(ports.agent_metrics))
    write_json_atomically(_file(home, MYSQLD_JOB, cluster), per_node(ports.exporter))
    write_json_atomically(
        _file(home, HAPROXY_JOB, cluster),
        [{"targets": [f"{layout.host}:{ports.stats}"], "labels": ids}],
    )


def remove_cluster_targets(home: Path, cluster: ClusterRef) -> None:
    for job in CLUSTER_JOBS:
        _file(home, job, cluster).unlink(missing_ok=True)


def write_process_targets(home: Path, job: str, name: str, addresses: list[str]) -> None:
    """A process of the stack (the worker's endpoints), as `<job>/<name>.json`."""
    write_json_atomically(targets_dir(home) / job / f"{name}.json", [{"targets": addresses}])
