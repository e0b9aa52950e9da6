"""The nightly pipeline declared once: order, run dates, cluster commands and the generic entry points."""

from __future__ import annotations

import datetime as dt
import shlex
from pathlib import Path

import pytest

from shoplake import pipeline
from shoplake.cli import build_parser
from shoplake.pipeline import PipelineError, Step, cluster_commands, step_date, steps, verb_main
from shoplake.spark import DELTA_PACKAGE
from shoplake.usecases import UseCase, use_cases

ROOT = Path(__file__).resolve().parents[2]
D = dt.date(2024, 3, 1)


def test_steps_start_with_ingest_and_features_and_depend_only_on_earlier_steps():
    names = [s.name for s in steps()]
    assert names[:2] == ["ingest", "features"]
    for i, step in enumerate(steps()):
        assert set(step.after) <= set(names[:i]), step.name
    declared = {s.use_case for s in steps() if s.use_case}
    assert declared == {uc.name for uc in use_cases() if uc.steps}


def test_ingest_runs_for_the_landing_day_and_every_later_dated_step_for_the_morning_after():
    for step in steps():
        day = step_date(step, D)
        if step.name == "ingest":
            assert day == D
        elif step.runs_for == "none":
            assert day is None
        else:
            assert day == D + dt.timedelta(days=1), step.name


def test_every_step_has_a_loadable_main_a_shim_in_the_repository_and_a_cli_command():
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    for step in steps():
        assert callable(step.load_main()), step.main
        assert (ROOT / step.shim[0]).is_file(), step.shim
        assert step.name in commands


def test_cluster_commands_follow_the_steps_with_their_dates_and_leave_out_skipped_use_cases():
    lines = cluster_commands(D)
    assert len(lines) == len(steps())
    first = shlex.split(lines[0])
    assert first[0] == "spark-submit" and "jobs/ingest.py" in first and first[-2:] == ["--run-date", "2024-03-01"]
    features = shlex.split(lines[1])
    assert "jobs/build_features.py" in features and features[-2:] == ["--run-date", "2024-03-02"]
    # Spark jobs get the Delta jars on the command line (the JVM starts before the job's code).
    assert first[first.index("--packages") + 1].split(",")[0] == DELTA_PACKAGE
    assert "org.apache.hadoop:hadoop-client-api" in first[first.index("--exclude-packages") + 1]
    # The night ends with lake maintenance, after every other step, for no date.
    last = shlex.split(lines[-1])
    assert "jobs/maintain_lake.py" in last and "--run-date" not in last
    assert set(steps()[-1].after) == {s.name for s in steps()[:-1]}
    fraud = [line for line in lines if "ray_apps/train.py fraud" in line]
    assert len(fraud) == 1 and fraud[0].startswith("ray job submit") and fraud[0].endswith("--run-date 2024-03-02")
    without = cluster_commands(D, skip={"fraud"})
    assert len(without) == len(lines) - len([s for s in steps() if s.use_case == "fraud"])
    assert not any(" fraud " in line for line in without)


def test_a_step_after_an_unknown_step_or_a_taken_name_is_refused():
    late = Step("train-x", "ray", "shoplake.cli:main", ("ray_apps/train.py", "x"), after=("score-x",))
    with pytest.raises(PipelineError, match="runs after score-x"):
        steps([UseCase(name="x", order=1, steps=(late,))])
    twice = Step("ingest", "ray", "shoplake.cli:main", ("ray_apps/train.py", "x"))
    with pytest.raises(PipelineError, match="two steps are named 'ingest'"):
        steps([UseCase(name="x", order=1, steps=(twice,))])


def test_the_generic_entry_point_hands_the_rest_of_the_line_to_the_use_cases_step(monkeypatch):
    seen = []
    fake = Step("train-x", "ray", "shoplake.cli:main", ("ray_apps/train.py", "x"), use_case="x")
    monkeypatch.setattr(Step, "load_main", lambda self: lambda argv: seen.append((self.name, argv)) or 7)
    monkeypatch.setattr(pipeline, "steps", lambda: [*pipeline.platform_steps(), fake])
    assert verb_main("train")(["x", "--run-date", "2024-03-02"]) == 7
    assert seen == [("train-x", ["--run-date", "2024-03-02"])]
    with pytest.raises(SystemExit, match="use cases with a train step: x"):
        verb_main("train")(["nope"])
    with pytest.raises(SystemExit, match="with a score step: none"):
        verb_main("score")(["x"])
