"""The worker's limits: flags, their variables, and refusals of nonsense."""

import pytest

from workers.worker import Settings, parse_args


def test_defaults_flags_and_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_args([]) == Settings()
    monkeypatch.setenv("MYSQLOPS_MAX_WATCHES", "2000")
    monkeypatch.setenv("MYSQLOPS_RUNTIME", "scripted")
    settings = parse_args(["--max-task-activities", "8", "--task-queue", "team-a"])
    assert (settings.runtime, settings.task_queue) == ("scripted", "team-a")
    assert (settings.limits.task_activities, settings.limits.watches) == (8, 2000)
    assert parse_args(["--max-watches", "5"]).limits.watches == 5  # the flag wins


@pytest.mark.parametrize(
    ("argv", "variables", "message"),
    [
        (["--max-watches", "0"], {}, "must be at least 1, got 0"),
        (["--probe-threads", "many"], {}, "not a whole number: 'many'"),
        ([], {"MYSQLOPS_MAX_TASK_ACTIVITIES": "-3"}, "must be at least 1, got -3"),
        (["--runtime", "docker"], {}, "invalid choice: 'docker'"),
        (["--runtime", "kubernetes"], {"MYSQLOPS_IMAGE": ""}, "needs MYSQLOPS_IMAGE"),
    ],
)
def test_nonsense_is_refused_with_the_reason(
    argv: list[str],
    variables: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
