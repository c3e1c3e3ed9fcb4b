"""`mysqlops chaos` refuses what it cannot do with exit status 2 and a message, before it
touches anything: an unknown fault kind, a cluster that does not exist, a machine where it
cannot inject (not root, no iptables for partitions)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from activities.local import mycnf
from api.cluster import MySQLClusterSpec
from workers.chaos.cluster import galera_ports
from workers.chaos.faults import KINDS
from workers.chaos.runner import parse_kinds
from workers.cli import parser
from workers.errors import UsageError

ROOT = Path(__file__).parents[2]
NOBODY = 65534


def run_chaos(
    tmp_path: Path, *args: str, as_nobody: bool = False, path: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"TEMPORAL_ADDRESS": "127.0.0.1:1", "MYSQLOPS_HOME": str(tmp_path / "home")}
    if path is not None:
        env["PATH"] = path
    # The interpreter lives under /root here: it drops root once the CLI is loaded.
    drop = f"import os; os.setresuid({NOBODY}, {NOBODY}, {NOBODY}); " if as_nobody else ""
    return subprocess.run(
        [sys.executable, "-c", f"from workers.cli import main; {drop}main()", "chaos", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_unknown_kind_is_refused_with_the_choices(tmp_path: Path) -> None:
    result = run_chaos(tmp_path, "demo", "--kinds", "kill,meteor")
    assert result.returncode == 2
    assert "meteor" in result.stderr and "partition-writer" in result.stderr


def test_no_fault_at_all_is_refused(tmp_path: Path) -> None:
    result = run_chaos(tmp_path, "demo", "--faults", "0")
    assert result.returncode == 2 and "--faults" in result.stderr


def test_a_cluster_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    result = run_chaos(tmp_path, "nosuch", "--kinds", "kill", "-n", "team")
    assert result.returncode == 2
    assert "mysqlcluster team/nosuch not found" in result.stderr


def test_without_root_it_refuses(tmp_path: Path) -> None:
    result = run_chaos(tmp_path, "demo", "--kinds", "kill", as_nobody=os.geteuid() == 0)
    assert result.returncode == 2
    assert "must run as root" in result.stderr


def test_partitions_without_iptables_are_refused(tmp_path: Path) -> None:
    no_iptables = str(Path(sys.executable).parent)  # PATH without /usr/sbin
    assert shutil.which("iptables", path=no_iptables) is None
    result = run_chaos(tmp_path, "demo", "--kinds", "kill,partition", path=no_iptables)
    assert result.returncode == 2
    assert "iptables" in result.stderr and "not installed" in result.stderr


def test_arguments_and_their_defaults() -> None:
    args = parser().parse_args(["chaos", "demo"])
    assert (args.name, args.namespace, args.faults, args.seed) == ("demo", "default", 6, 1)
    assert parse_kinds(args.kinds) == KINDS
    assert (args.partition_seconds, args.json) == (15, False)
    given = ["--faults", "3", "--seed", "7", "--json", "--partition-seconds", "4.5"]
    args = parser().parse_args(
        ["chaos", "shop", "-n", "prod", *given, "--kinds", "kill, partition-writer"]
    )
    assert (args.namespace, args.faults, args.seed, args.json) == ("prod", 3, 7, True)
    assert parse_kinds(args.kinds) == ("kill", "partition-writer")
    assert args.partition_seconds == 4.5
    with pytest.raises(UsageError):
        parse_kinds(" , ")


def test_the_ports_a_partition_cuts_are_read_from_the_node_config() -> None:
    config = mycnf.NodeConfig(
        cluster_name="default.demo",
        node_name="demo-1",
        host="127.0.0.1",
        port=23011,
        galera_port=23021,
        ist_port=23031,
        sst_port=23041,
        peers=("127.0.0.1:23020", "127.0.0.1:23021", "127.0.0.1:23022"),
        datadir="/d",
        socket="/s",
        pid_file="/p",
        error_log="/e",
        ordinal=1,
    )
    assert galera_ports(mycnf.render(config, MySQLClusterSpec())) == (23021, 23031, 23041)
