"""One place for where Temporal is: Temporal's own client configuration, then the `temporal`
CLI's TLS variables, then the command line's flags; a local dev server without any."""

from pathlib import Path

import pytest
from temporalio.service import TLSConfig

from workers import cli, temporal
from workers.errors import UsageError
from workers.temporal import Connection

NOTHING = {"HOME": "/nonexistent"}  # no temporal.toml either


def test_without_settings_a_local_dev_server() -> None:
    connection = Connection.load(NOTHING)
    assert (connection.address, connection.namespace) == ("127.0.0.1:7233", "default")
    options = connection.profile.to_client_connect_config()
    assert options["target_host"] == "127.0.0.1:7233" and "tls" not in options


def test_flags_override_variables_which_override_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "temporal.toml"
    config.write_text('[profile.default]\naddress = "file:7233"\nnamespace = "from-file"\n')
    env = {**NOTHING, "TEMPORAL_CONFIG_FILE": str(config)}
    assert Connection.load(env).address == "file:7233"
    env["TEMPORAL_ADDRESS"] = "env:7233"
    assert (Connection.load(env).address, Connection.load(env).namespace) == (
        "env:7233",
        "from-file",
    )
    flagged = Connection.load(env, address="flag:7233", namespace="ops")
    assert (flagged.address, flagged.namespace) == ("flag:7233", "ops")


def test_tls_files_from_the_temporal_cli_variables_or_flags(tmp_path: Path) -> None:
    for name in ("cert", "key", "ca", "other-ca"):
        (tmp_path / name).write_bytes(f"-- {name} --".encode())
    env = {
        **NOTHING,
        "TEMPORAL_TLS_CERT": str(tmp_path / "cert"),
        "TEMPORAL_TLS_KEY": str(tmp_path / "key"),
        "TEMPORAL_TLS_CA": str(tmp_path / "ca"),
    }
    connection = Connection.load(env, tls_ca=str(tmp_path / "other-ca"))
    tls = connection.profile.to_client_connect_config()["tls"]
    assert isinstance(tls, TLSConfig)
    assert (tls.client_cert, tls.client_private_key, tls.server_root_ca_cert) == (
        b"-- cert --",
        b"-- key --",
        b"-- other-ca --",
    )
    # What the local stack hands the processes it starts: the same settings.
    assert Connection.load({**NOTHING, **connection.environment()}) == connection


async def test_an_unreadable_tls_file_is_bad_input() -> None:
    connection = Connection.load(NOTHING, tls_cert="/nonexistent/cert.pem")
    with pytest.raises(UsageError, match=r"cannot read /nonexistent/cert\.pem"):
        await connection.connect()


def test_every_command_but_crd_takes_the_connection_flags() -> None:
    args = cli.parser().parse_args(
        ["status", "demo", "--temporal-address", "t:7233", "--tls-ca", "/ca.pem"]
    )
    assert args.func is cli.status_command
    connection = temporal.connection(args)
    assert connection.address == "t:7233"
    assert connection.profile.tls is not None
    assert connection.profile.tls.server_root_ca_cert == Path("/ca.pem")
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["crd", "--temporal-address", "t:7233"])
