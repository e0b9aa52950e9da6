"""The run manifest: readers see complete runs only; the next start of a step rolls an unfinished run back."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from shoplake.lake import LakeBatch
from shoplake.lake.catalog import register
from shoplake.lake.manifest import COMPLETE, FAILED, ROLLED_BACK, STARTED
from shoplake.lake.spec import Col, TableSpec

FIRST = TableSpec(name="test_run_first", layer="silver", columns=(Col("k", "long", nullable=False), Col("v", "string")), keys=("k",))
SECOND = TableSpec(name="test_run_second", layer="gold", columns=(Col("k", "long", nullable=False), Col("v", "string")), keys=("k",))
register(FIRST, SECOND)
STEP, D = "test-step", dt.date(2024, 6, 1)


def frame(spark, tag: str, n: int = 5):
    return spark.createDataFrame([(i, f"{tag}{i}") for i in range(n)], "k long, v string")


def values(lake, spec) -> list[str]:
    return sorted(r.v for r in lake.read(spec).collect())


def complete_run(lake, spark, tag: str, n: int = 5):
    with lake.batch(step=STEP, tables=[FIRST, SECOND], run_date=D) as batch:
        batch.write(frame(spark, tag, n), FIRST)
        batch.write(frame(spark, tag, n), SECOND)
    return batch


def killed_run(lake, spark, tag: str) -> LakeBatch:
    """A run that commits FIRST, writes SECOND's files and then stops for good (as a killed process would)."""
    batch = LakeBatch(lake, STEP, [FIRST.full_name, SECOND.full_name], D)
    batch.begin()
    batch.write(frame(spark, tag, 7), FIRST)
    batch.staged[0].commit()
    if lake.engine.name == "delta-rs":
        batch.write(frame(spark, tag, 7), SECOND)  # files written, never committed
    else:
        stray = Path(lake.uri(SECOND)) / f"part-00000-{batch.run_id}.c000.snappy.parquet"
        stray.write_bytes(b"a write cut short")
    return batch


def data_files(lake, spec) -> set[str]:
    return {p.name for p in Path(lake.uri(spec)).rglob("*.parquet") if "_delta_log" not in p.parts}


def test_a_complete_run_is_recorded_with_its_versions(spark, lake):
    batch = complete_run(lake, spark, "a")
    runs = lake.manifest.runs()
    assert [(r.run_id, r.step, r.status, r.run_date) for r in runs] == [(batch.run_id, STEP, COMPLETE, D)]
    assert runs[0].tables == (FIRST.full_name, SECOND.full_name)
    assert runs[0].versions == {FIRST.full_name: 0, SECOND.full_name: 0}
    assert lake.version(FIRST) == lake.current_version(FIRST) == 0


def test_readers_see_the_last_complete_run_while_a_run_is_unfinished(spark, lake):
    complete_run(lake, spark, "a")
    seen = []

    def look(self, staged):
        seen.append((staged.table, lake.version(FIRST), lake.current_version(FIRST), values(lake, FIRST)[:1], lake.row_count(FIRST)))

    LakeBatch._after_commit, original = look, LakeBatch._after_commit
    try:
        complete_run(lake, spark, "b", n=6)
    finally:
        LakeBatch._after_commit = original
    # Right after its first commit the run is unfinished: readers still get run "a".
    assert seen[0] == (FIRST.full_name, 0, 1, ["a0"], 5)
    # Once complete, readers get the new run.
    assert lake.version(FIRST) == 1 and values(lake, FIRST)[0] == "b0" and lake.row_count(FIRST) == 6
    assert lake.to_arrow(FIRST).num_rows == 6


def test_the_next_start_of_the_step_rolls_an_unfinished_run_back(spark, lake):
    complete_run(lake, spark, "a")
    before_files = data_files(lake, SECOND)
    killed = killed_run(lake, spark, "x")
    # The killed run's commit to FIRST is invisible to readers; SECOND never changed.
    assert lake.current_version(FIRST) == 1 and lake.version(FIRST) == 0
    assert values(lake, FIRST) == [f"a{i}" for i in range(5)]
    assert values(lake, SECOND) == [f"a{i}" for i in range(5)]
    assert data_files(lake, SECOND) - before_files, "the cut-short write left files behind"
    assert [r.run_id for r in lake.manifest.unfinished(STEP)] == [killed.run_id]

    rerun = complete_run(lake, spark, "b")
    statuses = {r.run_id: r.status for r in lake.manifest.runs()}
    assert statuses[killed.run_id] == ROLLED_BACK and statuses[rerun.run_id] == COMPLETE
    # FIRST went back to run "a" (v2) before run "b" wrote v3.
    history = lake.history(FIRST)
    assert [h["version"] for h in history][:2] == [3, 2]
    assert lake.read(FIRST, version=2).count() == 5
    assert values(lake, FIRST) == values(lake, SECOND) == [f"b{i}" for i in range(5)]
    # The files of the write the kill cut short are gone; the complete runs' files stay.
    assert before_files <= data_files(lake, SECOND) | before_files
    assert not any(killed.run_id[:12] in f or killed.run_id in f for f in data_files(lake, SECOND))


def test_a_table_the_unfinished_run_created_does_not_exist_for_readers(spark, lake):
    batch = LakeBatch(lake, STEP, [FIRST.full_name, SECOND.full_name], D)
    batch.begin()
    batch.write(frame(spark, "x"), FIRST)
    batch.staged[0].commit()
    assert lake.current_version(FIRST) == 0
    assert lake.version(FIRST) is None and not lake.exists(FIRST)
    with pytest.raises(FileNotFoundError, match="no complete version yet"):
        lake.read(FIRST)
    assert lake.roll_back_unfinished(STEP) == [batch.run_id]
    assert lake.current_version(FIRST) is None


def test_a_failed_run_restores_its_commits_and_is_recorded(spark, lake):
    complete_run(lake, spark, "a")
    with pytest.raises(ValueError, match="boom"):
        with lake.batch(step=STEP, tables=[FIRST, SECOND], run_date=D) as batch:
            batch.write(frame(spark, "b"), FIRST)
            raise ValueError("boom")
    assert values(lake, FIRST) == [f"a{i}" for i in range(5)]
    run = next(r for r in lake.manifest.runs() if r.run_id == batch.run_id)
    assert run.status == FAILED
    assert not lake.manifest.unfinished(STEP)


def test_a_recorded_run_names_its_tables(spark, lake):
    with pytest.raises(ValueError, match="not among the tables its run declared"):
        with lake.batch(step=STEP, tables=[FIRST]) as batch:
            batch.write(frame(spark, "a"), SECOND)
    assert {r.status for r in lake.manifest.runs()} == {FAILED}
    assert STARTED not in {r.status for r in lake.manifest.runs() if r.finished is False}
