"""The wheel ships every package: built offline from this checkout, installed (not editable) into a
fresh virtualenv, `mysqlops --help` runs and every shipped module imports, from the installed
copy, never from the checkout.

The fresh virtualenv takes the dependencies from the project's virtualenv through a `.pth` line
naming its site-packages: a directory added that way is put on sys.path but its own `.pth` files
are not processed, so the project's editable install of mysqlops stays inactive there.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest

from workers.cli import SERVICES

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("api", "galera", "workflows", "activities", "workers")
NOT_SHIPPED = ("tests", "bench", "scripts")


@dataclass(frozen=True)
class Installed:
    venv: Path
    site: Path
    work: Path  # an empty directory, the working directory of every command
    env: dict[str, str]

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def run(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in args],
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )


def _checkout_copy(target: Path) -> Path:
    """The checkout without VCS data, virtualenv, state and caches: the wheel is built from a
    copy because building in place writes build/ and *.egg-info into the checkout."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = {n for n in names if n in ("__pycache__", "build", "dist")}
        skipped |= {n for n in names if n.endswith(".egg-info")}
        if Path(directory) == ROOT:
            skipped |= {n for n in names if n.startswith(".")}
        return skipped

    shutil.copytree(ROOT, target, ignore=ignore)
    return target


def _pip_env() -> dict[str, str]:
    """No configuration file, index or find-links from the machine: nothing may be fetched."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    return env | {"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_NO_INPUT": "1"}


def _pip(*args: str | Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *map(str, args)],
        env=_pip_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _setuptools_builds_wheels() -> bool:
    """setuptools builds wheels by itself from 70.1 on, with the `wheel` package before."""
    major, minor = (int(part) for part in metadata.version("setuptools").split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    if not _setuptools_builds_wheels():
        pytest.fail("the project virtualenv cannot build a wheel offline: it needs `wheel`")
    tmp = tmp_path_factory.mktemp("packaging")
    source = _checkout_copy(tmp / "source")
    # The build backend is the project virtualenv's setuptools: no build isolation, no index.
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", tmp / "dist", source)
    (wheel,) = (tmp / "dist").glob("mysqlops-*.whl")

    fresh = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(fresh)
    python = fresh / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    project_site = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "mysqlops_test_dependencies.pth").write_text("".join(f"{p}\n" for p in project_site))
    _pip("--python", python, "install", "--no-deps", "--no-index", "--no-compile", wheel)

    work = tmp / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env |= {"MYSQLOPS_HOME": str(tmp / "home"), "PATH": f"{fresh / 'bin'}:{env.get('PATH', '')}"}
    yield Installed(fresh, site, work, env)


def test_packages_resolve_to_the_installed_copy(installed: Installed) -> None:
    code = (
        "import importlib, json, sys\n"
        "print(json.dumps([importlib.import_module(p).__file__ for p in sys.argv[1:]]))"
    )
    result = installed.run(installed.python, "-c", code, *PACKAGES)
    assert result.returncode == 0, result.stderr
    for file in json.loads(result.stdout):
        assert Path(file).is_relative_to(installed.site), file


def test_the_installed_file_list_holds_every_module_of_the_checkout(installed: Installed) -> None:
    code = "import importlib.metadata as m; print('\\n'.join(str(f) for f in m.files('mysqlops')))"
    result = installed.run(installed.python, "-c", code)
    assert result.returncode == 0, result.stderr
    files = set(result.stdout.split())
    checkout = {
        path.relative_to(ROOT).as_posix()
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert "activities/backup/__init__.py" in checkout  # the package once left out
    assert checkout - files == set()
    assert {f for f in checkout if f.startswith(("activities/backup/", "galera/"))} <= files
    assert {f for f in files if f.split("/")[0] in NOT_SHIPPED} == set()


def test_the_mysqlops_command_runs(installed: Installed) -> None:
    result = installed.run(installed.venv / "bin" / "mysqlops", "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: mysqlops" in result.stdout


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_each_service_the_image_runs_starts(installed: Installed, service: str) -> None:
    """`mysqlops worker|operator|agent`: the commands of the chart's and the node pods."""
    result = installed.run(installed.venv / "bin" / "mysqlops", service, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:"), result.stdout


IMPORT_ALL = """
import importlib, json, pkgutil, sys
found, failed, outside = [], {}, {}
def note(name):
    failed[name] = repr(sys.exc_info()[1])
for top in sys.argv[2:]:
    package = importlib.import_module(top)
    found.append(top)
    found += [m.name for m in pkgutil.walk_packages(package.__path__, top + ".", onerror=note)]
for name in found:
    try:
        module = importlib.import_module(name)
    except Exception as error:
        failed[name] = repr(error)
    else:
        if not module.__file__.startswith(sys.argv[1]):
            outside[name] = module.__file__
print(json.dumps({"found": found, "failed": failed, "outside": outside}))
"""


def test_every_shipped_module_imports(installed: Installed) -> None:
    result = installed.run(installed.python, "-c", IMPORT_ALL, installed.site, *PACKAGES)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["failed"] == {}
    assert report["outside"] == {}
    assert {"activities.backup.storage", "galera.diagnosis", "workers.logs"} <= set(report["found"])
