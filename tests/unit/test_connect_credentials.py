"""`mysqlops connect` never puts the application password on a command line or in its output:
it prints a `mariadb --defaults-extra-file=...` command, the file (mode 0600, in the cluster's
private secrets directory) holding what the client needs. The real client tools read it."""

import argparse
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any, cast

import pytest

from activities.local.runtime import LocalRuntime
from activities.users import APP_SECRET
from api.cluster import ClusterStatus, Endpoints
from api.layout import ClusterRef
from api.states import ClusterState, Phase
from workers import cli
from workers.client import ClusterClient
from workers.credentials import OPTION_FILE, app_access, write_option_file
from workers.errors import UsageError

REF = ClusterRef(namespace="default", name="demo")
STATUS = ClusterStatus(
    workflow_id="mysqlcluster/default/demo",
    phase=Phase.RUNNING,
    state=ClusterState.GREEN,
    replicas=3,
    endpoints=Endpoints(host="127.0.0.1", writer_port=23006, reader_port=23007),
)
needs_client_tools = pytest.mark.skipif(
    shutil.which("my_print_defaults") is None, reason="the MariaDB client tools are missing"
)


@pytest.fixture
def runtime(tmp_path: Path) -> LocalRuntime:
    runtime = LocalRuntime(tmp_path / "home")
    runtime.ensure_secret(REF, APP_SECRET)
    return runtime


def client_options(option_file: Path) -> list[str]:
    """What the MariaDB client reads from the file: its [client] group, as arguments."""
    read = subprocess.run(
        ["my_print_defaults", f"--defaults-file={option_file}", "client"],
        capture_output=True,
        text=True,
        check=True,
    )
    return read.stdout.splitlines()


@needs_client_tools
def test_the_option_file_holds_what_the_client_needs_and_only_its_owner_reads_it(
    runtime: LocalRuntime,
) -> None:
    access = app_access(STATUS, REF, runtime)
    password = runtime.read_secret(REF, APP_SECRET)
    assert access.option_file == runtime.secret_path(REF, APP_SECRET).with_name(OPTION_FILE)
    assert access.option_file.stat().st_mode & 0o777 == 0o600
    assert client_options(access.option_file) == [
        "--user=app",
        f"--password={password}",
        "--host=127.0.0.1",
        "--port=23006",
    ]


@needs_client_tools
def test_any_password_reads_back_verbatim(runtime: LocalRuntime) -> None:
    access = app_access(STATUS, REF, runtime)
    awkward = 'p"a\\s s#w;rd'
    write_option_file(access, awkward)
    assert f"--password={awkward}" in client_options(access.option_file)


def test_the_command_and_the_json_name_files_not_the_password(runtime: LocalRuntime) -> None:
    access = app_access(STATUS, REF, runtime)
    password = runtime.read_secret(REF, APP_SECRET)
    for argv in (shlex.split(access.command()), shlex.split(access.command(port=23007))):
        assert argv[:2] == ["mariadb", f"--defaults-extra-file={access.option_file}"]
        assert not any(password in arg for arg in argv)
    assert shlex.split(access.command(port=23007))[2:] == ["--port=23007"]
    assert password not in str(access.to_json())
    assert access.to_json()["password_file"] == str(runtime.secret_path(REF, APP_SECRET))


def test_a_loose_file_left_there_is_replaced_by_a_private_one(runtime: LocalRuntime) -> None:
    access = app_access(STATUS, REF, runtime)
    access.option_file.chmod(0o644)
    old = os.umask(0)
    try:
        app_access(STATUS, REF, runtime)
    finally:
        os.umask(old)
    assert access.option_file.stat().st_mode & 0o777 == 0o600


def test_a_secrets_directory_others_can_enter_is_refused(runtime: LocalRuntime) -> None:
    directory = runtime.secret_path(REF, APP_SECRET).parent
    directory.chmod(0o755)
    with pytest.raises(UsageError, match="accessible to group or others"):
        app_access(STATUS, REF, runtime)
    assert not (directory / OPTION_FILE).exists()


def test_no_endpoints_yet_is_said() -> None:
    creating = STATUS.model_copy(update={"endpoints": None})
    with pytest.raises(UsageError, match="has no endpoints yet"):
        app_access(creating, REF, LocalRuntime(Path("/nonexistent")))


class AnsweringHandle:
    id = "mysqlcluster/default/demo"

    async def query(self, name: str, result_type: type) -> ClusterStatus:
        return STATUS


async def test_mysqlops_connect_prints_the_command_without_the_password(
    runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MYSQLOPS_HOME", str(runtime.home))

    async def attached(args: argparse.Namespace) -> ClusterClient:
        return ClusterClient(cast(Any, AnsweringHandle()))

    monkeypatch.setattr(cli, "cluster_of", attached)
    args = cli.parser().parse_args(["connect", "demo"])
    assert await args.func(args) == 0
    printed = capsys.readouterr()
    password = runtime.read_secret(REF, APP_SECRET)
    assert password not in printed.out + printed.err
    option_file = runtime.secret_path(REF, APP_SECRET).with_name(OPTION_FILE)
    assert printed.out.splitlines() == [
        f"mariadb --defaults-extra-file={option_file}",
        f"# reader endpoint: mariadb --defaults-extra-file={option_file} --port=23007",
    ]


def test_a_cluster_this_machine_does_not_run_says_where_its_password_is(tmp_path: Path) -> None:
    """On Kubernetes the password is in the cluster's Secret and the endpoints are Services:
    connect says so instead of naming a file that does not exist, and writes nothing."""
    on_kubernetes = STATUS.model_copy(
        update={
            "endpoints": Endpoints(
                host="demo-writer.default.svc.cluster.local",
                writer_port=3306,
                reader_host="demo-reader.default.svc.cluster.local",
                reader_port=3306,
            )
        }
    )
    home = tmp_path / "home"
    with pytest.raises(UsageError) as refused:
        app_access(on_kubernetes, REF, LocalRuntime(home))
    said = str(refused.value)
    assert "Secret demo-secrets" in said and "app-password" in said
    assert "demo-writer.default.svc.cluster.local:3306" in said
    assert "port-forward svc/demo-writer" in said
    assert not home.exists()
