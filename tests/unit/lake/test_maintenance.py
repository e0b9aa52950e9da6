"""Lake maintenance on each engine: many small files compacted, unreferenced old files vacuumed, readers unaffected."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

from shoplake import columns as C
from shoplake.lake import Lake
from shoplake.lake.catalog import register
from shoplake.lake.maintenance import maintain
from shoplake.lake.spec import Col, TableSpec

SMALL = TableSpec(name="test_small_files", layer="silver", columns=(Col("k", "long", nullable=False), Col("v", "double")), keys=("k",))
register(SMALL)
_DATED = (Col(C.RUN_DATE, "date", nullable=False), Col("k", "long", nullable=False))
SNAPSHOTS = TableSpec(name="test_snapshots", layer="gold", columns=_DATED, keys=(C.RUN_DATE, "k"), partition_by=(C.RUN_DATE,))
LANDING_DAYS = TableSpec(name="test_landing_days", layer="bronze", columns=_DATED, keys=(C.RUN_DATE, "k"), partition_by=(C.RUN_DATE,))
register(SNAPSHOTS, LANDING_DAYS)
DAYS = [dt.date(2024, 1, d) for d in (1, 2, 3, 4)]


def test_maintenance_compacts_and_vacuums_only_what_no_reader_needs(spark, cfg, make_cfg):
    lake = Lake(make_cfg(f"lake.engine={cfg.lake.engine}", "lake.compact_min_files=3", "lake.vacuum_retention_hours=1"), spark)
    for i in range(4):
        lake.write(spark.createDataFrame([(i * 10 + j, float(j)) for j in range(10)], "k long, v double").coalesce(1), SMALL, mode="append")
    assert lake.file_count(SMALL) >= 4
    rows = sorted(tuple(r) for r in lake.read(SMALL).collect())
    version_before = lake.version(SMALL)
    # The file of a write killed before its commit, long ago: no version references it.
    orphan = Path(lake.uri(SMALL)) / "part-00000-killed-write.c000.snappy.parquet"
    orphan.write_bytes(b"cut short")
    two_hours_ago = time.time() - 7200
    os.utime(orphan, (two_hours_ago, two_hours_ago))

    [done] = maintain(lake, [SMALL])
    assert done.compacted and done.files_after < done.files_before
    assert done.vacuumed >= 1 and not orphan.exists()
    # Same rows; the versions before the compaction are still there to travel to (their files are younger than the retention).
    assert sorted(tuple(r) for r in lake.read(SMALL).collect()) == rows
    assert lake.read(SMALL, version=version_before).count() == 40
    assert lake.read(SMALL, version=0).count() == 10

    [again] = maintain(lake, [SMALL])
    assert not again.compacted and again.vacuumed == 0


def test_the_nightly_closes_with_the_maintenance_step(spark, cfg, make_cfg, capsys):
    import datetime as dt

    from shoplake.pipeline import run_nightly

    cfg = make_cfg(f"lake.engine={cfg.lake.engine}", "lake.compact_min_files=3")
    lake = Lake(cfg, spark)
    for i in range(3):
        lake.write(spark.createDataFrame([(i, 1.0)], "k long, v double").coalesce(1), SMALL, mode="append")

    assert run_nightly(cfg, [dt.date(2024, 1, 1)], only=["maintain-lake"]) == ["maintain-lake"]
    assert lake.file_count(SMALL) == 1 and lake.row_count(SMALL) == 3
    assert "lake maintenance: 0 snapshot(s) expired, 1 table(s) compacted" in capsys.readouterr().out


def test_maintenance_keeps_the_latest_snapshots_of_silver_and_gold_and_every_landing_day(spark, cfg, make_cfg):
    lake = Lake(make_cfg(f"lake.engine={cfg.lake.engine}", "lake.keep_run_dates=2"), spark)
    rows = spark.createDataFrame([(day, k) for day in DAYS for k in range(3)], f"{C.RUN_DATE} date, k long")
    for spec in (SNAPSHOTS, LANDING_DAYS):
        lake.write(rows, spec, mode="overwrite")
    version = lake.version(SNAPSHOTS)

    [done] = maintain(lake, [SNAPSHOTS])
    assert done.expired == tuple(DAYS[:2])
    assert lake.run_dates(SNAPSHOTS) == DAYS[2:] and lake.row_count(SNAPSHOTS) == 6
    assert lake.read(SNAPSHOTS, version=version).count() == 12  # time travel reaches the expired snapshots
    [bronze] = maintain(lake, [LANDING_DAYS])
    assert bronze.expired == () and lake.run_dates(LANDING_DAYS) == DAYS
    [again] = maintain(lake, [SNAPSHOTS])
    assert again.expired == () and lake.version(SNAPSHOTS) == version + 1  # nothing more to expire, no commit

    everything = Lake(make_cfg(f"lake.engine={cfg.lake.engine}", "lake.keep_run_dates=null"), spark)
    lake.write(rows, SNAPSHOTS, mode="overwrite")
    [kept] = maintain(everything, [SNAPSHOTS])
    assert kept.expired == () and everything.run_dates(SNAPSHOTS) == DAYS
