"""A local Prometheus (Debian's `prometheus`) scraping the local stack: `mysqlops up` starts it
with `--prometheus` (or `MYSQLOPS_PROMETHEUS=1`), the integration tests start their own.

Its targets are file_sd files under `<home>/prometheus/targets/<job>/` (written by the local
runtime for each cluster, and by whoever starts the worker); its rules are the chart's rule
file, as is. Scrapes and rule evaluations every 5 s: a local stack wants to see a kill quickly.
"""

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from activities.local.scrape import AGENT_JOB, JOBS, targets_dir

BINARY = "prometheus"
PROJECT = Path(__file__).resolve().parents[1]
RULES = PROJECT / "charts" / "mysqlops" / "files" / "alerts.rules.yaml"
INTERVAL = "5s"


def config(home: Path, rules: Path = RULES) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {
                "job_name": job,
                # The agents label their series with their cluster and node themselves.
                "honor_labels": job == AGENT_JOB,
                "file_sd_configs": [
                    {"files": [str(targets_dir(home) / job / "*.json")], "refresh_interval": "5s"}
                ],
            }
            for job in JOBS
        ],
    }


def write_config(home: Path, rules: Path = RULES) -> Path:
    directory = home / "prometheus"
    for job in JOBS:
        (targets_dir(home) / job).mkdir(parents=True, exist_ok=True)
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config(home, rules), sort_keys=False))
    return path


def command(home: Path, address: str) -> list[str]:
    binary = shutil.which(BINARY)
    if binary is None:
        raise RuntimeError("prometheus is missing: run scripts/setup.sh (Debian's prometheus)")
    directory = home / "prometheus"
    return [
        binary,
        f"--config.file={directory / 'prometheus.yml'}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address={address}",
        "--storage.tsdb.retention.time=7d",
        "--storage.tsdb.retention.size=512MB",
    ]


def start(home: Path, address: str, log: Path) -> subprocess.Popen[bytes]:
    write_config(home)
    with open(log, "ab") as out:
        return subprocess.Popen(
            command(home, address),
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def api(address: str, path: str, timeout: float = 5) -> Any:
    """GET Prometheus's HTTP API; its `data`."""
    with urllib.request.urlopen(f"http://{address}/api/v1/{path}", timeout=timeout) as answer:
        body = json.load(answer)
    if body.get("status") != "success":
        raise RuntimeError(f"Prometheus {path}: {body}")
    return body["data"]


def wait_ready(address: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://{address}/-/ready", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"Prometheus at {address} did not become ready")
        time.sleep(0.3)
