"""How a person reaches a cluster as its application user without the password ever being on a
command line (where any local user reads it in /proc/<pid>/cmdline) or in printed output:
`mysqlops connect` writes a MariaDB option file ([client] user, password, host, port), mode
0600, into the cluster's private secrets directory, and prints the command that reads it."""

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from activities.kubernetes.objects import ClusterNames
from activities.local.paths import UnsafeDirectory, check_private_dir
from activities.local.runtime import LocalRuntime
from activities.users import APP_SECRET, APP_USER
from api.cluster import ClusterStatus
from api.layout import ClusterRef
from workers.errors import UsageError

OPTION_FILE = "app-client.cnf"


@dataclass(frozen=True)
class AppAccess:
    """The application user's way in: the writer endpoint (and the reader's port), and the
    files that hold its password."""

    host: str
    port: int
    reader_port: int
    user: str
    password_file: Path
    option_file: Path

    def command(self, port: int | None = None) -> str:
        """A `mariadb` command line reading everything from the option file (`port`: another
        endpoint than the writer)."""
        other = f" --port={port}" if port is not None else ""
        return f"mariadb --defaults-extra-file={shlex.quote(str(self.option_file))}{other}"

    def to_json(self) -> dict[str, object]:
        return {
            "host": self.host,
            "port": self.port,
            "reader_port": self.reader_port,
            "user": self.user,
            "password_file": str(self.password_file),
            "option_file": str(self.option_file),
        }


def app_access(
    status: ClusterStatus, cluster: ClusterRef, runtime: LocalRuntime | None = None
) -> AppAccess:
    """The application user's access to the cluster, its option file written (again)."""
    if status.endpoints is None:
        raise UsageError(f"mysqlcluster {cluster.key} has no endpoints yet")
    runtime = runtime or LocalRuntime()
    password_file = runtime.secret_path(cluster, APP_SECRET)
    if not password_file.exists():
        raise UsageError(elsewhere(status, cluster))
    try:
        password = password_file.read_text().strip()
    except OSError as error:
        raise UsageError(f"cannot read {password_file}: {error.strerror}") from None
    access = AppAccess(
        host=status.endpoints.host,
        port=status.endpoints.writer_port,
        reader_port=status.endpoints.reader_port,
        user=APP_USER,
        password_file=password_file,
        option_file=password_file.with_name(OPTION_FILE),
    )
    write_option_file(access, password)
    return access


def elsewhere(status: ClusterStatus, cluster: ClusterRef) -> str:
    """How to reach a cluster whose nodes this machine does not run (on Kubernetes: the
    password is in the cluster's Secret, the endpoints are Services)."""
    assert status.endpoints is not None
    names = ClusterNames.of(cluster)
    ns = shlex.quote(cluster.namespace)
    return (
        f"this machine holds no password for mysqlcluster {cluster.key}: its nodes run "
        f"elsewhere. On Kubernetes the application user {APP_USER}'s password is key "
        f"{APP_SECRET} of Secret {names.secret} (kubectl -n {ns} get secret {names.secret} "
        f"-o jsonpath='{{.data.{APP_SECRET}}}' | base64 -d), and the writer endpoint is "
        f"{status.endpoints.host}:{status.endpoints.writer_port} inside the cluster "
        f"(kubectl -n {ns} port-forward svc/{names.writer_service} 3306 from outside)"
    )


def write_option_file(access: AppAccess, password: str) -> None:
    """The [client] group for `access`, replaced atomically; created with mode 0600 in a
    directory that must be private to this user (UsageError otherwise)."""
    directory = access.option_file.parent
    try:
        check_private_dir(directory, os.getuid())
    except (UnsafeDirectory, FileNotFoundError) as error:
        raise UsageError(str(error)) from None
    text = (
        "# Written by `mysqlops connect`: the application user through the writer endpoint.\n"
        "[client]\n"
        f"user={_quoted(access.user)}\n"
        f"password={_quoted(password)}\n"
        f"host={access.host}\n"
        f"port={access.port}\n"
    )
    partial = directory / f".{OPTION_FILE}.tmp"
    partial.unlink(missing_ok=True)
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
    os.replace(partial, access.option_file)


def _quoted(value: str) -> str:
    """A value as an option file reads it back verbatim: in double quotes, with backslashes
    and double quotes escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
