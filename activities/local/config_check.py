"""Ask mariadbd itself whether it can start with a rendered my.cnf, before a node restarts with it.

`mariadbd --help --verbose` parses every option of the file (server, plugin and wsrep ones) and
reports what it cannot take, then exits: it binds no port, loads no wsrep provider and
initializes no storage engine. It does make a test file in its data directory and change into
it, so the check points it at an empty scratch directory instead of the node's. It only warns
about what it adjusts (out-of-range numbers, unknown booleans read as OFF): those are not errors
here (api/mysql_options.py refuses them in the spec).
"""

import shutil
import subprocess
import tempfile
from pathlib import Path

from activities.local import mycnf
from api.cluster import MySQLClusterSpec

_TAGGED = ("[Warning]", "[Note]")


def server_config_errors(mycnf_text: str, timeout: float = 30) -> str | None:
    """The server's own error lines for `mycnf_text`, joined with ' | ', or None if it can start."""
    with tempfile.TemporaryDirectory(prefix="mysqlops-cnf-") as scratch:
        mycnf = Path(scratch) / "my.cnf"
        mycnf.write_text(mycnf_text)
        result = subprocess.run(
            # --defaults-file must come first; --datadir after it overrides the file's.
            ["mariadbd", f"--defaults-file={mycnf}", f"--datadir={scratch}", "--help", "--verbose"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # the help text
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            timeout=timeout,
        )
    errors: list[str] = []
    for line in result.stderr.splitlines():
        if "[ERROR]" in line:
            text = line.split("[ERROR]", 1)[1].strip().removeprefix("Buffered error: ")
        elif result.returncode != 0 and line.strip() and not any(t in line for t in _TAGGED):
            # The my.cnf reader and the charset setup print untagged lines; the scratch path
            # in them means nothing to a user.
            text = line.strip().replace(str(mycnf), "my.cnf")
        else:
            continue
        if text not in errors:
            errors.append(text)
    if not errors and result.returncode != 0:
        errors.append(f"mariadbd --help exited with status {result.returncode}")
    return " | ".join(errors) or None


def spec_config_errors(spec: MySQLClusterSpec) -> str | None:
    """The server's objections to the my.cnf a node of `spec` would get, checked on this
    machine before a change is sent (the workflow checks again before any restart); None when
    it has no objection or no mariadbd is installed here to ask."""
    if shutil.which("mariadbd") is None:
        return None
    with tempfile.TemporaryDirectory(prefix="mysqlops-spec-") as scratch:
        node = mycnf.NodeConfig(
            cluster_name="default.check",
            node_name="check-0",
            host="127.0.0.1",
            port=3306,
            galera_port=4567,
            ist_port=4568,
            sst_port=4444,
            peers=("127.0.0.1:4567",),
            datadir=f"{scratch}/data",
            socket=f"{scratch}/mariadbd.sock",
            pid_file=f"{scratch}/mariadbd.pid",
            error_log=f"{scratch}/error.log",
        )
        return server_config_errors(mycnf.render(node, spec))
