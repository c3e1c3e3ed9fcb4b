"""The Grafana dashboard the chart ships (charts/mysqlops/dashboards/mysqlops.json), as code.

Built with the Grafana Foundation SDK's typed builders (`grafana-foundation-sdk`, the build for
Grafana 11.6) and written as JSON by `make dashboard`:

    python -m workers.dashboard --output charts/mysqlops/dashboards/mysqlops.json

tests/unit/test_dashboard.py fails when the committed file differs from what this module builds.
The SDK is a development dependency (the `dashboard` and `test` extras): nothing at run time
imports this module, the chart ships the JSON.

Metric names and labels are those of docs/observability.md. Census gauges are exposed by every
worker, so panels take `max by (...)` of them; counters from workflow code are split over the
workers, so panels `sum by (...)` them. Every panel about clusters filters on the template
variables `cluster_namespace` and `cluster`.
"""

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.builders import prometheus, stat, statetimeline, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

UID = "mysqlops"
TITLE = "mysqlops"
DEFAULT_OUTPUT = Path("charts/mysqlops/dashboards/mysqlops.json")

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
# The clusters the variables select, in every selector of a series about a cluster.
CLUSTER = 'cluster_namespace=~"$cluster_namespace", cluster=~"$cluster"'
BY_CLUSTER = "cluster_namespace, cluster"
BY_NODE = "cluster_namespace, cluster, node"
CLUSTER_LEGEND = "{{cluster_namespace}}/{{cluster}}"
NODE_LEGEND = "{{cluster_namespace}}/{{node}}"
RATE = "$__rate_interval"

# State codes of the state timelines, worst first (a census between two states may briefly show
# both: the worst wins), with the colour each state is drawn in.
CLUSTER_STATES = (("Red", "red"), ("Yellow", "yellow"), ("Green", "green"))
NODE_STATES = (
    ("Red-unclean", "dark-red"),
    ("Red-clean", "red"),
    ("Unknown", "purple"),
    ("Yellow", "yellow"),
    ("Green", "green"),
)
WSREP_LOCAL_STATES = (
    (0, "Undefined", "purple"),
    (1, "Joining", "blue"),
    (2, "Donor/Desynced", "orange"),
    (3, "Joined", "yellow"),
    (4, "Synced", "green"),
    (5, "Error", "red"),
)

DASHED = model.DynamicConfigValue(
    id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}
)


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    instant: bool = False  # the value now only (stat panels), not a range


def selector(metric: str, *matchers: str) -> str:
    """`metric{matchers..., cluster_namespace=~..., cluster=~...}`."""
    return f"{metric}{{{', '.join([*matchers, CLUSTER])}}}"


def census(metric: str, by: str, *matchers: str) -> str:
    """A census gauge of the selected clusters: every worker exposes the same, take the max."""
    return f"max by ({by}) ({selector(metric, *matchers)})"


def state_code(metric: str, by: str, states: Sequence[str]) -> str:
    """One series per `by` group whose value is the index in `states` of the state the one-hot
    gauge `metric{state=...}` is 1 for; the first state listed wins when several are."""
    return "\nor ".join(
        f"({census(metric, by, f'state={json.dumps(state)}')} == 1) * {code}"
        for code, state in enumerate(states)
    )


def events(metric: str, by: str, window: str, *matchers: str) -> str:
    """How many times the census counter `metric` went up in `window`, by `by`; every worker
    exports the same value, hence the max.

    A labelled counter appears with its first increment: `increase()` alone would miss it (a
    series needs two samples), so a series that did not exist `window` ago counts in full."""
    series = selector(metric, *matchers)
    return (
        f"max by ({by}) (\n  ({series} unless {series} offset {window})\n"
        f"  or increase({series}[{window}])\n)"
    )


def quantile(q: float, bucket: str, by: str, *matchers: str, clusters: bool = True) -> str:
    series = selector(bucket, *matchers) if clusters else bucket
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({series}[{RATE}])))"


def targets(queries: Sequence[Query]) -> list[cogbuilder.Builder[cogvariants.Dataquery]]:
    result: list[cogbuilder.Builder[cogvariants.Dataquery]] = []
    for index, query in enumerate(queries):
        target = (
            prometheus.Dataquery()
            .ref_id(chr(ord("A") + index))
            .datasource(DATASOURCE)
            .expr(query.expr)
            .legend_format(query.legend)
        )
        result.append(target.instant() if query.instant else target.range())
    return result


def legend() -> common_builders.VizLegendOptions:
    return (
        common_builders.VizLegendOptions()
        .display_mode(common.LegendDisplayMode.LIST)
        .placement(common.LegendPlacement.BOTTOM)
        .show_legend(True)
    )


def tooltip() -> common_builders.VizTooltipOptions:
    return (
        common_builders.VizTooltipOptions()
        .mode(common.TooltipDisplayMode.MULTI)
        .sort(common.SortOrder.DESCENDING)
    )


def thresholds(*steps: tuple[float | None, str]) -> builders.ThresholdsConfig:
    return (
        builders.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


def value_map(values: Sequence[tuple[int, str, str]]) -> list[model.ValueMapping]:
    """Value mappings: each number shown as a text in a colour."""
    return [
        model.ValueMap(
            options={
                str(value): model.ValueMappingResult(text=text, color=color, index=index)
                for index, (value, text, color) in enumerate(values)
            }
        )
    ]


def graph(
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    unit: str = "short",
    width: int = 8,
    height: int = 8,
    bars: bool = False,
    dashed: Sequence[str] = (),
    minimum: float | None = 0,
) -> timeseries.Panel:
    """A time series panel; `dashed`: the refIds drawn as dashed lines (limits, expectations)."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(targets(queries))
        .unit(unit)
        .span(width)
        .height(height)
        .legend(legend())
        .tooltip(tooltip())
        .fill_opacity(10)
        .line_width(1)
        .show_points(common.VisibilityMode.NEVER)
    )
    if minimum is not None:
        panel = panel.min(minimum)
    if bars:
        panel = panel.draw_style(common.GraphDrawStyle.BARS).fill_opacity(80)
    for ref_id in dashed:
        panel = panel.override_by_query(ref_id, [DASHED])
    return panel


def timeline(
    title: str,
    description: str,
    queries: Sequence[Query],
    mappings: Sequence[tuple[int, str, str]],
    *,
    width: int = 24,
    height: int = 8,
    show_value: common.VisibilityMode = common.VisibilityMode.AUTO,
) -> statetimeline.Panel:
    """A state timeline: one row per series, its value shown as the mapped text and colour."""
    return (
        statetimeline.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(targets(queries))
        .span(width)
        .height(height)
        .mappings(value_map(mappings))
        .thresholds(thresholds((None, "text")))
        .color_scheme(builders.FieldColor().mode(model.FieldColorModeId.THRESHOLDS))
        .show_value(show_value)
        .merge_values(True)
        .row_height(0.9)
        .legend(legend().show_legend(False))
        .tooltip(tooltip())
    )


def single(
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    steps: Sequence[tuple[float | None, str]],
    no_value: str,
    width: int = 8,
    height: int = 8,
) -> stat.Panel:
    """A stat panel: the last value of each series, coloured by `steps`."""
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(targets(queries))
        .span(width)
        .height(height)
        .thresholds(thresholds(*steps))
        .no_value(no_value)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


def state_mappings(states: Sequence[tuple[str, str]]) -> list[tuple[int, str, str]]:
    return [(code, state, color) for code, (state, color) in enumerate(states)]


# -- the rows --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """A row and its panels; a collapsed row holds its panels (and queries nothing until
    opened), an open one is followed by them."""

    title: str
    collapsed: bool
    panels: Sequence[cogbuilder.Builder[model.Panel]]


def clusters() -> Section:
    return Section(
        "Clusters",
        False,
        [
            timeline(
                "Cluster state",
                "The state of each cluster from the worker's census (mysqlops_cluster_state == 1):"
                " Green serves with every expected node Green, Yellow serves with fewer, Red does"
                " not serve.",
                [
                    Query(
                        state_code(
                            "mysqlops_cluster_state", BY_CLUSTER, [s for s, _ in CLUSTER_STATES]
                        ),
                        CLUSTER_LEGEND,
                    )
                ],
                state_mappings(CLUSTER_STATES),
                height=6,
            ),
            graph(
                "Nodes Green vs expected",
                "Nodes Green now (solid) against the replicas of the applied spec (dashed). Below"
                " the line: the cluster is Yellow or Red.",
                [
                    Query(
                        census("mysqlops_cluster_nodes_green", BY_CLUSTER),
                        f"{CLUSTER_LEGEND} Green",
                    ),
                    Query(
                        census("mysqlops_cluster_nodes_expected", BY_CLUSTER),
                        f"{CLUSTER_LEGEND} expected",
                    ),
                ],
                dashed=["B"],
            ),
            graph(
                "Task queue length",
                "Tasks (operations) waiting behind the one running; each cluster runs one task"
                " at a time.",
                [Query(census("mysqlops_task_queue_length", BY_CLUSTER), CLUSTER_LEGEND)],
            ),
            timeline(
                "Running task",
                "The kind of task each cluster runs (create, apply, remediate, backup, ...): one"
                " row per cluster and kind, drawn while it runs.",
                [
                    Query(
                        f"{census('mysqlops_task_running', f'{BY_CLUSTER}, kind')} == 1",
                        f"{CLUSTER_LEGEND} {{{{kind}}}}",
                    )
                ],
                [(1, "running", "blue")],
                width=8,
                show_value=common.VisibilityMode.NEVER,
            ),
            timeline(
                "Manual intervention",
                "Waiting for a human: automation stopped at the fault shown and does nothing"
                " until `mysqlops resume` (see docs/runbooks.md).",
                [
                    Query(
                        census("mysqlops_manual_intervention", f"{BY_CLUSTER}, fault"),
                        f"{CLUSTER_LEGEND} {{{{fault}}}}",
                    )
                ],
                [(0, "automatic", "green"), (1, "waiting for a human", "red")],
                width=12,
                height=6,
            ),
            timeline(
                "Unwatched",
                "Clusters no worker watches the health of: failures there go unnoticed until a"
                " worker takes the watch again.",
                [Query(census("mysqlops_cluster_unwatched", BY_CLUSTER), CLUSTER_LEGEND)],
                [(0, "watched", "green"), (1, "unwatched", "red")],
                width=12,
                height=6,
            ),
        ],
    )


def nodes() -> Section:
    return Section(
        "Nodes",
        False,
        [
            timeline(
                "Node state",
                "The state of each node from the census: Green (Synced, Primary), Yellow (in the"
                " cluster, not serving), Red-clean (exited gracefully), Red-unclean (crash, kill,"
                " OOM), Unknown (not answering).",
                [
                    Query(
                        state_code("mysqlops_node_state", BY_NODE, [s for s, _ in NODE_STATES]),
                        NODE_LEGEND,
                    )
                ],
                state_mappings(NODE_STATES),
            ),
        ],
    )


def repairs() -> Section:
    return Section(
        "Repairs",
        False,
        [
            graph(
                "Repairs started",
                "Repairs the controller started, by the fault repaired (forced actions:"
                " OperatorRequest), per $__rate_interval.",
                [
                    Query(
                        events("mysqlops_remediations_started_total", f"{BY_CLUSTER}, fault", RATE),
                        f"{CLUSTER_LEGEND} {{{{fault}}}}",
                    )
                ],
                width=12,
                bars=True,
            ),
            graph(
                "Repairs ended",
                "Repairs that ended, by fault and outcome (Succeeded, Failed, ...), per"
                " $__rate_interval.",
                [
                    Query(
                        events(
                            "mysqlops_remediations_ended_total",
                            f"{BY_CLUSTER}, fault, outcome",
                            RATE,
                        ),
                        f"{CLUSTER_LEGEND} {{{{fault}}}} {{{{outcome}}}}",
                    )
                ],
                width=12,
                bars=True,
            ),
        ],
    )


def backups() -> Section:
    return Section(
        "Backups",
        False,
        [
            graph(
                "Age of the last successful backup",
                "Time since the newest successful backup finished (solid), against the time"
                " between two scheduled backups (dashed; absent without a schedule). Above the"
                " line: a scheduled backup is late.",
                [
                    Query(
                        "time() - "
                        + census("mysqlops_backup_last_success_timestamp_seconds", BY_CLUSTER),
                        f"{CLUSTER_LEGEND} age",
                    ),
                    Query(
                        census("mysqlops_backup_schedule_interval_seconds", BY_CLUSTER),
                        f"{CLUSTER_LEGEND} schedule interval",
                    ),
                ],
                unit="s",
                width=12,
                dashed=["B"],
            ),
            single(
                "Failed backups (24 h)",
                "Backups that ended Failed in the last 24 hours, per cluster.",
                [
                    Query(
                        events("mysqlops_backups_total", BY_CLUSTER, "24h", 'outcome="Failed"'),
                        CLUSTER_LEGEND,
                        instant=True,
                    )
                ],
                steps=[(None, "green"), (1, "red")],
                no_value="0",
                width=12,
            ),
            graph(
                "Last backup duration",
                "How long the newest successful backup took.",
                [
                    Query(
                        census("mysqlops_backup_last_duration_seconds", BY_CLUSTER),
                        CLUSTER_LEGEND,
                    )
                ],
                unit="s",
                width=12,
            ),
            graph(
                "Last backup size",
                "What the newest successful backup stored.",
                [Query(census("mysqlops_backup_last_size_bytes", BY_CLUSTER), CLUSTER_LEGEND)],
                unit="bytes",
                width=12,
            ),
        ],
    )


def probes() -> Section:
    return Section(
        "Probe latency",
        True,
        [
            graph(
                "Health-watch SQL probe p95",
                "95th percentile of one SQL probe of a node by the worker's health watch.",
                [
                    Query(
                        quantile(0.95, "mysqlops_probe_duration_seconds_bucket", BY_NODE),
                        NODE_LEGEND,
                    )
                ],
                unit="s",
                width=12,
            ),
            graph(
                "Node agent probe p95",
                "95th percentile of the local probe each node's agent runs (what HAProxy's check"
                " is answered from).",
                [
                    Query(
                        quantile(0.95, "mysqlops_agent_probe_duration_seconds_bucket", BY_NODE),
                        NODE_LEGEND,
                    )
                ],
                unit="s",
                width=12,
            ),
        ],
    )


def galera() -> Section:
    return Section(
        "Galera",
        True,
        [
            timeline(
                "wsrep local state",
                "wsrep_local_state of each node, from mysqld_exporter: 4 Synced serves, 1"
                " Joining receives a state transfer, 2 Donor/Desynced sends one, 3 Joined"
                " catches up. No value: mysqld_exporter or the node is down.",
                [
                    Query(
                        census("mysql_global_status_wsrep_local_state", BY_NODE),
                        NODE_LEGEND,
                    )
                ],
                WSREP_LOCAL_STATES,
            ),
            graph(
                "Cluster size vs expected",
                "wsrep_cluster_size as each node sees it (solid), against the replicas of the"
                " applied spec (dashed). Nodes disagreeing: a partition.",
                [
                    Query(
                        census("mysql_global_status_wsrep_cluster_size", BY_NODE),
                        NODE_LEGEND,
                    ),
                    Query(
                        census("mysqlops_cluster_nodes_expected", BY_CLUSTER),
                        f"{CLUSTER_LEGEND} expected",
                    ),
                ],
                dashed=["B"],
            ),
            graph(
                "Flow control paused",
                "Fraction of time each node's replication was paused by flow control over 5"
                " minutes: writes stall cluster-wide while a slow node catches up.",
                [
                    Query(
                        "max by ({}) (rate({}[5m])) / 1e9".format(
                            BY_NODE, selector("mysql_global_status_wsrep_flow_control_paused_ns")
                        ),
                        NODE_LEGEND,
                    )
                ],
                unit="percentunit",
            ),
            graph(
                "Receive queue",
                "Write-sets received and waiting to be applied on each node"
                " (wsrep_local_recv_queue): a growing queue triggers flow control.",
                [
                    Query(
                        census("mysql_global_status_wsrep_local_recv_queue", BY_NODE),
                        NODE_LEGEND,
                    )
                ],
            ),
        ],
    )


def haproxy() -> Section:
    return Section(
        "HAProxy",
        True,
        [
            timeline(
                "Backends up",
                "Each backend server of the writer and reader endpoints, UP when HAProxy routes"
                " to it (the node is Synced in the Primary component).",
                [
                    Query(
                        census(
                            "haproxy_server_status", f"{BY_CLUSTER}, proxy, server", 'state="UP"'
                        ),
                        f"{CLUSTER_LEGEND} {{{{proxy}}}}/{{{{server}}}}",
                    )
                ],
                [(0, "down", "red"), (1, "UP", "green")],
            ),
        ],
    )


def temporal_workers() -> Section:
    return Section(
        "Temporal workers",
        True,
        [
            graph(
                "Workflow task schedule-to-start p95",
                "95th percentile of the time workflow tasks wait for a worker to pick them up:"
                " growing, the workers are too few or too busy.",
                [
                    Query(
                        quantile(
                            0.95,
                            "temporal_workflow_task_schedule_to_start_latency_seconds_bucket",
                            "task_queue",
                            clusters=False,
                        ),
                        "{{task_queue}}",
                    )
                ],
                unit="s",
                width=6,
            ),
            graph(
                "Activity failures",
                "Activity executions that failed, per second, by activity type (each is"
                " retried by its policy).",
                [
                    Query(
                        "sum by (activity_type) "
                        f"(rate(temporal_activity_execution_failed_total[{RATE}]))",
                        "{{activity_type}}",
                    )
                ],
                unit="ops",
                width=6,
            ),
            graph(
                "Task slots available",
                "Free task slots of each worker, by worker type (the fewest over its task"
                " queues): at 0, tasks wait for a slot.",
                [
                    Query(
                        "min by (instance, worker_type) (temporal_worker_task_slots_available)",
                        "{{instance}} {{worker_type}}",
                    )
                ],
                width=6,
            ),
            graph(
                "Health watches vs slots",
                "Health watches each worker runs (solid) against its limit, --max-watches"
                " (dashed).",
                [
                    Query("sum by (instance) (mysqlops_watches_running)", "{{instance}}"),
                    Query("sum by (instance) (mysqlops_watch_slots)", "{{instance}} slots"),
                ],
                width=6,
                dashed=["B"],
            ),
        ],
    )


def watcher() -> Section:
    return Section(
        "Watcher",
        True,
        [
            graph(
                "Watch events",
                "Kubernetes watch events the operator received, per second, by kind and type.",
                [
                    Query(
                        f"sum by (kind, type) (rate(mysqlops_watcher_events_total[{RATE}]))",
                        "{{kind}} {{type}}",
                    )
                ],
                unit="ops",
            ),
            graph(
                "Relists",
                "Full lists per second, by kind (at start, after 410 Gone, on resync): frequent"
                " relists mean the watch keeps breaking.",
                [
                    Query(
                        f"sum by (kind) (rate(mysqlops_watcher_relists_total[{RATE}]))",
                        "{{kind}}",
                    )
                ],
                unit="ops",
            ),
            timeline(
                "Informers synced",
                "Whether each informer has listed (synced) or is relisting.",
                [Query("min by (kind) (mysqlops_watcher_synced)", "{{kind}}")],
                [(0, "relisting", "orange"), (1, "synced", "green")],
                width=8,
            ),
        ],
    )


SECTIONS = (clusters, nodes, repairs, backups, probes, galera, haproxy, temporal_workers, watcher)


# -- the dashboard ---------------------------------------------------------------------------


def variables() -> list[cogbuilder.Builder[model.VariableModel]]:
    def clusters_variable(name: str, label: str, query: str) -> builders.QueryVariable:
        return (
            builders.QueryVariable(name)
            .label(label)
            .datasource(DATASOURCE)
            .query(query)
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(model.VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(model.VariableOption(selected=True, text="All", value="$__all"))
        )

    return [
        builders.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .current(model.VariableOption(selected=True, text="default", value="default")),
        clusters_variable(
            "cluster_namespace",
            "Namespace",
            "label_values(mysqlops_cluster_state, cluster_namespace)",
        ),
        clusters_variable(
            "cluster",
            "Cluster",
            'label_values(mysqlops_cluster_state{cluster_namespace=~"$cluster_namespace"},'
            " cluster)",
        ),
    ]


def build() -> model.Dashboard:
    """The dashboard, every panel and row numbered 1, 2, ... in the order shown."""
    board = (
        builders.Dashboard(TITLE)
        .uid(UID)
        .description(
            "MariaDB Galera clusters run by mysqlops: cluster and node states, repairs, backups,"
            " probes, Galera replication, HAProxy backends, the Temporal workers and the"
            " Kubernetes watcher (docs/observability.md)."
        )
        .tags(["mysqlops", "galera", "mariadb"])
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("browser")
        .variables(variables())
        .annotation(
            # Grafana's own annotations and alerts, as Grafana saves every dashboard with.
            builders.AnnotationQuery()
            .name("Annotations & Alerts")
            .datasource(model.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
            .enable(True)
            .hide(True)
            .icon_color("rgba(0, 211, 255, 1)")
            .type("dashboard")
            .built_in(1)
        )
    )
    for section in SECTIONS:
        part = section()
        row = builders.Row(part.title).collapsed(part.collapsed)
        if part.collapsed:
            for panel in part.panels:
                row = row.with_panel(panel)
            board = board.with_row(row)
        else:
            board = board.with_row(row)
            for panel in part.panels:
                board = board.with_panel(panel)
    result = board.build()
    number = 0
    for item in result.panels or []:
        number += 1
        item.id_val = number
        if isinstance(item, model.RowPanel):
            for inner in item.panels:
                number += 1
                inner.id_val = number
    return result


def render() -> str:
    """The dashboard as the JSON text committed in the chart."""
    return json.dumps(build(), cls=JSONEncoder, indent=2, ensure_ascii=False) + "\n"


def dashboard_json() -> dict[str, Any]:
    """The dashboard as a JSON object (what Grafana loads)."""
    document: dict[str, Any] = json.loads(render())
    return document


def all_panels(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of a dashboard JSON object, rows and the panels inside collapsed rows too."""
    for panel in document.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs() -> list[str]:
    """The PromQL expression of every panel query, in panel order."""
    return [
        target["expr"]
        for panel in all_panels(dashboard_json())
        for target in panel.get("targets", [])
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workers.dashboard", description="Write the Grafana dashboard as JSON."
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help=f"the file to write (the chart's: {DEFAULT_OUTPUT}); standard output without it",
    )
    args = parser.parse_args(argv)
    text = render()
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
