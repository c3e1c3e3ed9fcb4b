"""activities/local/config_check.py: the real mariadbd judges a rendered my.cnf, starting nothing;
and the static value table of api/mysql_options.py agrees with that server."""

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from activities.local import mycnf
from activities.local.config_check import server_config_errors
from api.cluster import MySQLClusterSpec
from api.mysql_options import VALUE_TYPES, Choice, Integer, Modes, Real


def node(tmp_path: Path) -> mycnf.NodeConfig:
    home = tmp_path / "demo-0"
    return mycnf.NodeConfig(
        cluster_name="demo",
        node_name="demo-0",
        host="127.0.0.1",
        port=33061,
        galera_port=34561,
        ist_port=34562,
        sst_port=34563,
        peers=("127.0.0.1:34561", "127.0.0.1:34571", "127.0.0.1:34581"),
        datadir=str(home / "data"),
        socket=str(home / "mysqld.sock"),
        pid_file=str(home / "mysqld.pid"),
        error_log=str(home / "error.log"),
    )


def rendered(tmp_path: Path, config: dict[str, Any] | None = None) -> str:
    spec = MySQLClusterSpec.model_validate({"mysql": {"config": config or {}}})
    return mycnf.render(node(tmp_path), spec)


def test_the_config_of_a_normal_spec_passes(tmp_path: Path) -> None:
    assert server_config_errors(rendered(tmp_path)) is None


def test_values_the_spec_accepts_pass(tmp_path: Path) -> None:
    config = {
        "max_connections": "1K",
        "max_allowed_packet": "64m",
        "slow_query_log": True,
        "performance_schema": "off",
        "long_query_time": 0.25,
        "transaction_isolation": "read-committed",
        "innodb_flush_method": "O_DIRECT",
        "sql_mode": "STRICT_ALL_TABLES,ANSI",
        "character_set_server": "utf8mb4",
        "collation_server": "utf8mb4_general_ci",
    }
    assert server_config_errors(rendered(tmp_path, config)) is None


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("foo = 1", "mariadbd: unknown variable 'foo=1'"),
        ("max_connections = lots", "Unknown suffix 'l' used for variable 'max_connections'"),
        ("transaction_isolation = nope", "Error while setting value 'nope' to 'transaction-"),
        # mariadbd exits 0 here (it disables InnoDB); a real start then aborts
        ("innodb_flush_method = nope", "Parsing options for plugin 'InnoDB' failed"),
        # beyond the static check: the collation does not fit the default latin1
        ("collation_server = utf8mb4_general_ci", "is not valid for CHARACTER SET 'latin1'"),
        # an untagged line
        ("character_set_server = nope", "Character set 'nope' is not a compiled character set"),
    ],
)
def test_the_server_names_the_mistake(tmp_path: Path, line: str, said: str) -> None:
    errors = server_config_errors(rendered(tmp_path) + line + "\n")
    assert errors is not None
    assert said in errors


def test_an_option_outside_any_group_is_refused(tmp_path: Path) -> None:
    errors = server_config_errors("max_connections = 10\n" + rendered(tmp_path))
    assert errors is not None
    assert "Found option without preceding group in config file: my.cnf at line: 1" in errors


def test_what_the_server_only_adjusts_is_not_an_error(tmp_path: Path) -> None:
    """It clamps 0 connections to 10 and reads 'maybe' as OFF, with warnings; the spec check
    (api/mysql_options.py) refuses both."""
    text = rendered(tmp_path) + "max_connections = 0\nslow_query_log = maybe\n"
    assert server_config_errors(text) is None


def test_the_node_is_left_alone(tmp_path: Path) -> None:
    config = node(tmp_path)
    data = Path(config.datadir)
    data.mkdir(parents=True)
    (data / "ibdata1").write_bytes(b"")
    before = data.stat().st_mtime_ns
    assert server_config_errors(rendered(tmp_path)) is None
    assert data.stat().st_mtime_ns == before  # not even a test file made and removed in it
    assert sorted(p.name for p in data.parent.rglob("*")) == ["data", "ibdata1"]


def server_warnings(tmp_path: Path, lines: list[str]) -> str:
    mycnf_path = tmp_path / "probe.cnf"
    mycnf_path.write_text("[mariadbd]\n" + "\n".join(lines) + "\n")
    result = subprocess.run(
        [
            "mariadbd",
            f"--defaults-file={mycnf_path}",
            f"--datadir={tmp_path}",
            "--help",
            "--verbose",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return result.stderr.replace("-", "_")  # plugin options are named with '-'


def test_the_ranges_are_the_servers(tmp_path: Path) -> None:
    """At each end of a range the server keeps the value; one past it, it adjusts it."""
    ranges = {
        name: (kind.low, kind.high)
        for name, kind in VALUE_TYPES.items()
        if isinstance(kind, Integer | Real)
    }
    for end in (0, 1):
        warnings = server_warnings(tmp_path, [f"{n} = {r[end]}" for n, r in ranges.items()])
        assert "adjusted" not in warnings
    below = {n: low - 1 for n, (low, _) in ranges.items() if low > 0}  # -1: an error if unsigned
    above = {n: high + 1 for n, (_, high) in ranges.items() if high < 2**64 - 1}
    for past in (below, above):
        warnings = server_warnings(tmp_path, [f"{n} = {v}" for n, v in past.items()])
        assert set(re.findall(r"option '(\w+)': .* adjusted to", warnings)) == set(past)


def test_every_name_the_spec_accepts_is_the_servers(tmp_path: Path) -> None:
    lines = [
        f"{name} = {value}"
        for name, kind in VALUE_TYPES.items()
        if isinstance(kind, Choice | Modes) and name != "character_set_server"  # only the last
        for value in kind.names  # of its lines is checked, and it lists them all
    ]
    assert server_config_errors("[mariadbd]\n" + "\n".join(lines) + "\n") is None
