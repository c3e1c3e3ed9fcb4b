"""A node's first data directory: `mariadb-install-db` into a staging directory, renamed into
place, so a half-made initialisation is never taken for data."""

import shutil
import subprocess

from activities.local.paths import NodePaths
from activities.local.position import has_data


def initialize(paths: NodePaths) -> bool:
    """Initialise the node's data directory unless it has data (never over existing data).
    Only a node that will bootstrap needs one: joiners receive theirs by SST. Returns whether
    it initialised."""
    if has_data(paths.data):
        return False
    staging = paths.root / "data.init"
    shutil.rmtree(staging, ignore_errors=True)  # a half-made init of ours, never data
    staging.mkdir()
    result = subprocess.run(
        [
            "mariadb-install-db",
            f"--defaults-file={paths.config}",
            f"--datadir={staging}",
            "--skip-test-db",
            "--auth-root-authentication-method=socket",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"mariadb-install-db failed: {result.stderr[-2000:]}")
    if paths.data.exists():
        paths.data.rmdir()  # empty by the check above
    staging.rename(paths.data)
    return True
