"""How every mysqlops process reaches Temporal: the one place for the connection settings, the
task queue and the data converter.

Settings, each later source overriding the earlier: Temporal's own client configuration
(`temporalio.envconfig`: the profile of a `temporal.toml` file, `TEMPORAL_ADDRESS`,
`TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, `TEMPORAL_TLS_*_PATH`); then `TEMPORAL_TLS_CERT`,
`TEMPORAL_TLS_KEY` and `TEMPORAL_TLS_CA` (the names the `temporal` CLI reads); then the command
line's flags. Without any, a local dev server: 127.0.0.1:7233, namespace `default`, no TLS.
"""

import argparse
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfigProfile, ClientConfigTLS
from temporalio.runtime import Runtime

from workers.errors import Unreachable, UsageError

TASK_QUEUE = "mysqlops"
DEFAULT_ADDRESS = "127.0.0.1:7233"
DEFAULT_NAMESPACE = "default"
TLS_VARIABLES = {"cert": "TEMPORAL_TLS_CERT", "key": "TEMPORAL_TLS_KEY", "ca": "TEMPORAL_TLS_CA"}


@dataclass(frozen=True)
class Connection:
    """Where Temporal is and how to talk to it; `profile` always has an address and a
    namespace."""

    profile: ClientConfigProfile

    @classmethod
    def load(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        address: str | None = None,
        namespace: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        tls_ca: str | None = None,
    ) -> "Connection":
        """The settings from `env` (default: this process's environment) and the flags given."""
        environ = dict(os.environ if env is None else env)
        try:
            profile = ClientConfigProfile.load(override_env_vars=environ)
        except Exception as error:  # the bridge's ConfigError: a broken temporal.toml
            raise UsageError(f"Temporal client configuration: {error}") from None
        tls = profile.tls or ClientConfigTLS()
        cert = tls_cert or environ.get(TLS_VARIABLES["cert"])
        key = tls_key or environ.get(TLS_VARIABLES["key"])
        ca = tls_ca or environ.get(TLS_VARIABLES["ca"])
        if cert or key or ca:
            tls = dataclasses.replace(
                tls,
                disabled=False,
                client_cert=Path(cert) if cert else tls.client_cert,
                client_private_key=Path(key) if key else tls.client_private_key,
                server_root_ca_cert=Path(ca) if ca else tls.server_root_ca_cert,
            )
        return cls(
            dataclasses.replace(
                profile,
                address=address or profile.address or DEFAULT_ADDRESS,
                namespace=namespace or profile.namespace or DEFAULT_NAMESPACE,
                tls=tls if tls != ClientConfigTLS() else None,
            )
        )

    @property
    def address(self) -> str:
        return self.profile.address or DEFAULT_ADDRESS

    @property
    def namespace(self) -> str:
        return self.profile.namespace or DEFAULT_NAMESPACE

    def environment(self) -> dict[str, str]:
        """These settings as variables, for the processes the local stack starts."""
        env = {"TEMPORAL_ADDRESS": self.address, "TEMPORAL_NAMESPACE": self.namespace}
        tls = self.profile.tls
        if tls is not None:
            for name, source in (
                ("cert", tls.client_cert),
                ("key", tls.client_private_key),
                ("ca", tls.server_root_ca_cert),
            ):
                if isinstance(source, Path):
                    env[TLS_VARIABLES[name]] = str(source)
        return env

    async def connect(self, runtime: Runtime | None = None) -> Client:
        """`runtime`: the SDK runtime a worker made to serve its metrics (default: the SDK's)."""
        try:
            options = self.profile.to_client_connect_config()
        except OSError as error:  # a TLS file that cannot be read
            problem = f"cannot read {error.filename}: {error.strerror}"
            raise UsageError(f"Temporal TLS: {problem}") from None
        try:
            return await Client.connect(
                **options, data_converter=pydantic_data_converter, runtime=runtime
            )
        except RuntimeError as error:  # the core's "Failed client connect"
            raise Unreachable(f"could not reach Temporal at {self.address}: {error}") from None


def temporal_flags() -> argparse.ArgumentParser:
    """Where Temporal is; each flag overrides its variable. A parent parser for commands."""
    flags = argparse.ArgumentParser(add_help=False)
    group = flags.add_argument_group("Temporal connection")
    group.add_argument("--temporal-address", metavar="HOST:PORT", help="env TEMPORAL_ADDRESS")
    group.add_argument("--temporal-namespace", metavar="NS", help="env TEMPORAL_NAMESPACE")
    group.add_argument("--tls-cert", metavar="FILE", help="client certificate, TEMPORAL_TLS_CERT")
    group.add_argument("--tls-key", metavar="FILE", help="client key, TEMPORAL_TLS_KEY")
    group.add_argument("--tls-ca", metavar="FILE", help="server CA, TEMPORAL_TLS_CA")
    return flags


def connection(args: argparse.Namespace) -> Connection:
    """The settings from the environment and the flags of `temporal_flags`."""
    return Connection.load(
        address=args.temporal_address,
        namespace=args.temporal_namespace,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_ca=args.tls_ca,
    )


def address() -> str:
    """The Temporal address this process's environment names."""
    return Connection.load().address


async def connect(runtime: Runtime | None = None) -> Client:
    """A client for the Temporal this process's environment names."""
    return await Connection.load().connect(runtime)
