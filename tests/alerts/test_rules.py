"""The Prometheus alert rules (charts/mysqlops/files/alerts.rules.yaml) and their runbooks.

`promtool` (Debian's `prometheus` package, installed by scripts/setup.sh) checks the file and
runs the unit tests beside this module (`*.test.yaml`: input series, the alerts expected to
fire and those that must not). Without promtool these tests fail, never skip. The rest is
read from the files: every rule is a complete alert, its runbook section exists in
docs/runbooks.md, and it names only metrics docs/observability.md lists and jobs the local
stack scrapes.
"""

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from activities.local.scrape import JOBS

ROOT = Path(__file__).resolve().parents[2]
RULES_FILE = ROOT / "charts" / "mysqlops" / "files" / "alerts.rules.yaml"
TESTS_DIR = Path(__file__).resolve().parent
UNIT_TESTS = sorted(TESTS_DIR.glob("*.test.yaml"))
RUNBOOKS = ROOT / "docs" / "runbooks.md"
CATALOGUE = ROOT / "docs" / "observability.md"
RUNBOOK_URL = "https://github.com/mysqlops/mysqlops/blob/main/docs/runbooks.md#"
GROUPS = ["mysqlops-clusters", "mysqlops-backups", "mysqlops-components", "galera"]
SEVERITIES = {"critical", "warning"}
CLUSTER = "{{ $labels.cluster_namespace }}/{{ $labels.cluster }}"
NODE = "{{ $labels.node }}"
# Metric names the rules may use: ours, the exporters', Temporal's SDK's; and `up`.
METRIC = re.compile(r"\b(?:mysqlops|mysql|temporal|haproxy)_[a-z0-9_]+\b")
HISTOGRAM_SUFFIX = re.compile(r"_(bucket|count|sum)$")


def load_rules() -> dict[str, Any]:
    rules: dict[str, Any] = yaml.safe_load(RULES_FILE.read_text())
    return rules


def alerts() -> list[dict[str, Any]]:
    """Every rule of every group, in file order."""
    return [rule for group in load_rules()["groups"] for rule in group["rules"]]


def alert_names() -> list[str]:
    return [rule["alert"] for rule in alerts()]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run promtool from ROOT; a missing promtool fails the test that needs it."""
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool is not installed (Debian package `prometheus`): run `bash scripts/setup.sh`",
            pytrace=False,
        )
    return subprocess.run(
        [found, *args], capture_output=True, text=True, cwd=ROOT, timeout=600, check=False
    )


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to
    hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def headings(markdown: str) -> list[str]:
    """The ATX headings of a Markdown text, outside fenced code blocks."""
    found, fenced = [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"#{1,6} +(.+?) *#* *$", line)):
            found.append(match[1])
    return found


def unit_tests() -> Iterator[tuple[Path, dict[str, Any]]]:
    """(file, test group) of every promtool unit test."""
    for path in UNIT_TESTS:
        for group in yaml.safe_load(path.read_text())["tests"]:
            yield path, group


# -- promtool --------------------------------------------------------------------------------


def test_promtool_checks_the_rules_file() -> None:
    result = promtool("check", "rules", str(RULES_FILE.relative_to(ROOT)))
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool check rules failed:\n{output}"
    assert f"SUCCESS: {len(alerts())} rules found" in output, output


@pytest.mark.parametrize("path", UNIT_TESTS, ids=lambda path: path.name)
def test_promtool_unit_tests(path: Path) -> None:
    result = promtool("test", "rules", str(path.relative_to(ROOT)))
    if result.returncode != 0:
        pytest.fail(
            f"promtool test rules {path.relative_to(ROOT)} failed:\n{result.stdout}{result.stderr}",
            pytrace=False,
        )


def test_unit_tests_exist_and_load_the_rules_file() -> None:
    assert [path.name for path in UNIT_TESTS] == [
        "backups.test.yaml",
        "clusters.test.yaml",
        "components.test.yaml",
        "galera.test.yaml",
    ]
    for path in UNIT_TESTS:
        spec = yaml.safe_load(path.read_text())
        files = [(path.parent / name).resolve() for name in spec["rule_files"]]
        assert files == [RULES_FILE], path.name
        assert spec.get("evaluation_interval"), f"{path.name}: the default (1m) hides `for: 30s`"


def test_every_alert_has_firing_and_quiet_cases() -> None:
    """Each alert is expected to fire somewhere, and expected not to fire somewhere else."""
    fires: set[str] = set()
    quiet: set[str] = set()
    for _, group in unit_tests():
        for case in group.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = set(alert_names())
    assert names - fires == set(), "alerts never expected to fire"
    assert names - quiet == set(), "alerts never expected to stay quiet"
    assert (fires | quiet) - names == set(), "tests of alerts that do not exist"


def test_promtool_missing_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(pytest.fail.Exception, match=r"scripts/setup\.sh"):
        promtool("--version")


# -- the rules -------------------------------------------------------------------------------


def test_groups() -> None:
    assert set(load_rules()) == {"groups"}
    assert [group["name"] for group in load_rules()["groups"]] == GROUPS
    names = alert_names()
    assert len(names) == len(set(names)), "alert names repeat"


@pytest.mark.parametrize("rule", alerts(), ids=lambda rule: rule.get("alert", "?"))
def test_every_rule_is_a_complete_alert(rule: dict[str, Any]) -> None:
    assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule
    assert re.fullmatch(r"[A-Z][A-Za-z]+", rule["alert"])
    assert re.fullmatch(r"([0-9]+(s|m|h))+", rule["for"]), rule["for"]
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    for text in annotations.values():
        assert isinstance(text, str) and text.strip() and "\n" not in text.strip()
    assert annotations["runbook_url"] == RUNBOOK_URL + rule["alert"].lower()


def test_descriptions_name_the_cluster_and_node() -> None:
    """An alert whose firing cases carry the cluster (the node, the fault) says which."""
    rules = {rule["alert"]: rule for rule in alerts()}
    for _, group in unit_tests():
        for case in group.get("alert_rule_test", []):
            description = rules[case["alertname"]]["annotations"]["description"]
            for expected in case.get("exp_alerts") or []:
                labels = expected.get("exp_labels", {})
                if "cluster" in labels:
                    assert CLUSTER in description, case["alertname"]
                if "node" in labels:
                    assert NODE in description, case["alertname"]
                if "fault" in labels:
                    assert "{{ $labels.fault }}" in description, case["alertname"]


def test_rules_use_catalogued_metrics_and_scraped_jobs() -> None:
    """Metric names as docs/observability.md lists them; job names as the local stack's
    scrape configuration (activities/local/scrape.py) and the chart's ServiceMonitor set them."""
    catalogue = CATALOGUE.read_text()
    for rule in alerts():
        expr = rule["expr"]
        names = {HISTOGRAM_SUFFIX.sub("", name) for name in METRIC.findall(expr)}
        assert names or re.search(r"\bup\{", expr), rule["alert"]
        missing = {name for name in names if not re.search(rf"\b{name}\b", catalogue)}
        assert not missing, f"{rule['alert']}: not in {CATALOGUE.name}: {sorted(missing)}"
        for jobs in re.findall(r'job=~?"([^"]+)"', expr):
            assert set(jobs.split("|")) <= set(JOBS), (rule["alert"], jobs, JOBS)


# -- the runbooks ----------------------------------------------------------------------------


def test_github_anchor() -> None:
    assert github_anchor("MySQLClusterRed") == "mysqlclusterred"
    assert github_anchor("First look at a cluster") == "first-look-at-a-cluster"
    assert github_anchor("Repair: faults, playbooks") == "repair-faults-playbooks"
    assert github_anchor("`mysqlops status`") == "mysqlops-status"


def test_every_runbook_url_is_a_heading() -> None:
    text = RUNBOOKS.read_text()
    anchors = {github_anchor(heading) for heading in headings(text)}
    for rule in alerts():
        url = rule["annotations"]["runbook_url"]
        assert url.startswith(RUNBOOK_URL), url
        assert url.removeprefix(RUNBOOK_URL) in anchors, f"no heading for {url} in {RUNBOOKS}"


def test_runbooks_have_a_section_per_alert_and_no_other() -> None:
    """The sections named like alerts are exactly the alerts, each once, in the rules' order;
    and every link inside the page points to a heading."""
    text = RUNBOOKS.read_text()
    sections = [h for h in headings(text) if re.fullmatch(r"[A-Z][A-Za-z]+", h) and h != "Runbooks"]
    assert sections == alert_names()
    anchors = {github_anchor(heading) for heading in headings(text)}
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links - anchors == set(), "links to missing headings"
