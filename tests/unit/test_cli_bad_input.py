"""`mysqlops apply` refuses bad input with exit status 2, naming the field, before any change."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from workers.errors import UsageError
from workers.resources import load_resources

ROOT = Path(__file__).parents[2]
GOOD = """\
apiVersion: mysqlops.io/v1alpha1
kind: MySQLCluster
metadata:
  name: demo
spec:
  replicas: 3
"""
BACKUP = """\
apiVersion: mysqlops.io/v1alpha1
kind: MySQLBackup
metadata:
  name: nightly
spec:
  cluster: demo
"""
RESTORE = BACKUP.replace("MySQLBackup", "MySQLRestore") + "  backup: nightly\n"


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`mysqlops ARGS` against a Temporal address where nothing listens."""
    env = os.environ | {"TEMPORAL_ADDRESS": "127.0.0.1:1", "MYSQLOPS_HOME": str(tmp_path / "home")}
    return subprocess.run(
        [sys.executable, "-c", "from workers.cli import main; main()", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def run_apply(tmp_path: Path, path: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(tmp_path, "apply", "-f", str(path))


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (GOOD + "  replicaz: 3\n", "spec.replicaz"),
        (GOOD.replace("replicas: 3", "replicas: 2"), "spec.replicas"),
        (GOOD.replace("name: demo", "name: Demo"), "metadata.name"),
        (GOOD + "  storage:\n    size: 10GB\n", "spec.storage.size"),
        (GOOD + "  mysql:\n    config:\n      wsrep_provider: none\n", "spec.mysql.config"),
        (
            GOOD + "  mysql:\n    config:\n      max_connections: lots\n",
            "spec.mysql.config: max_connections: 'lots' is not an integer",
        ),
        (  # well-formed, but the server refuses it (the default character set is latin1)
            GOOD + "  mysql:\n    config:\n      collation_server: utf8mb4_general_ci\n",
            "the server refuses it: COLLATION 'utf8mb4_general_ci' is not valid for CHARACTER SET",
        ),
        ("kind: MySQLCluster\nspec: [unclosed\n", "not valid YAML"),
        (None, "cannot read"),  # missing file
        (GOOD.replace("kind: MySQLCluster", "kind: Deployment"), "kind 'Deployment'"),
        (GOOD + "status:\n  phase: Running\n", "status is written by mysqlops"),
        (GOOD + "  backup:\n    schedule: every night\n", "spec.backup.schedule"),
        (GOOD + "  backup:\n    retention:\n      maxAge: 1w\n", "spec.backup.retention.maxAge"),
        (BACKUP.replace("cluster: demo", "clustr: demo"), "spec.clustr"),
        (BACKUP.replace("name: nightly", "name: Nightly_1"), "metadata.name"),
        (RESTORE.replace("backup: nightly", "backup: ../etc"), "spec.backup"),
    ],
    ids=[
        "unknown",
        "even",
        "name",
        "size",
        "managed",
        "bad-value",
        "server-refuses",
        "yaml",
        "missing",
        "kind",
        "status",
        "cron",
        "max-age",
        "backup-field",
        "backup-name",
        "restore-name",
    ],
)
def test_apply_refuses(tmp_path: Path, text: str | None, names: str) -> None:
    path = tmp_path / "cluster.yaml"
    if text is not None:
        path.write_text(text)
    result = run_apply(tmp_path, path)
    stderr = result.stderr.replace(str(path), "FILE")  # the message, not the path, must name it
    assert result.returncode == 2, stderr
    assert names in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "home").exists()


def test_one_bad_document_refuses_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(GOOD + "---\n" + GOOD.replace("replicas: 3", "replicas: 4"))
    with pytest.raises(UsageError, match=r"spec\.replicas"):
        load_resources(path)


def test_every_document_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(GOOD + "---\n" + GOOD.replace("name: demo", "name: other"))
    assert [c.metadata.name for c in load_resources(path)] == ["demo", "other"]


def test_apply_refuses_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_bytes(b"\xff\xfe\x00binary")
    result = run_apply(tmp_path, path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["force-action", "demo", "explode", "--node", "demo-0", "--reason", "x"],
        ["force-action", "demo", "restart", "--reason", "x"],
        ["force-action", "demo", "restart", "--node", "demo-0"],
        ["force-action", "demo", "restart", "--node", "demo-0", "--reason", " "],
    ],
)
def test_force_action_without_a_known_action_node_or_reason_is_refused(
    tmp_path: Path, args: list[str]
) -> None:
    result = run_cli(tmp_path, *args)
    assert result.returncode == 2, result
    assert result.stderr.strip()


def test_backup_and_restore_resources_load_beside_clusters(tmp_path: Path) -> None:
    path = tmp_path / "all.yaml"
    path.write_text(GOOD + "---\n" + BACKUP + "---\n" + RESTORE)
    assert [type(r).__name__ for r in load_resources(path)] == [
        "MySQLCluster",
        "MySQLBackup",
        "MySQLRestore",
    ]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["backup", "demo", "--keep-for", "a month"], "--keep-for"),
        (["status", "demo", "--tls-cert", "/nonexistent/cert.pem"], "cannot read"),
    ],
    ids=["keep-for", "tls-file"],
)
def test_bad_flags_are_refused_before_anything_is_sent(
    tmp_path: Path, args: list[str], says: str
) -> None:
    result = run_cli(tmp_path, *args)
    assert result.returncode == 2, result
    assert says in result.stderr and "Traceback" not in result.stderr


def test_an_unreachable_temporal_is_exit_1_and_says_where(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "stop", "demo")
    assert result.returncode == 1, result
    assert "could not reach Temporal at 127.0.0.1:1" in result.stderr
