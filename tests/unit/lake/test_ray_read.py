"""``Lake.ray_read``: Ray Data tasks read one partition's rows that match a filter; the Delta log prunes the files."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import write_deltalake

from shoplake.lake import Lake
from shoplake.lake.spec import Col, TableSpec

SPEC = TableSpec(
    name="ray_read_events", layer="bronze",
    columns=(Col("event_id", "long", False), Col("ts", "timestamp", False), Col("run_date", "date", False)),
    keys=("event_id", "run_date"), partition_by=("run_date",),
)  # fmt: skip
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


def test_ray_read_keeps_one_partition_and_the_rows_of_the_filter(make_cfg, ray_local):
    cfg = make_cfg("ray.cpus_per_data_task=0.25")
    lake = Lake(cfg)
    for run_date in (dt.date(2024, 2, 1), dt.date(2024, 2, 2)):
        for day in range(4):  # one file per day and run date: statistics let the log skip whole files
            table = pa.table({
                "event_id": pa.array([day * 10 + i for i in range(3)], pa.int64()),
                "ts": pa.array([T0 + dt.timedelta(days=day, hours=i) for i in range(3)], pa.timestamp("us", tz="UTC")),
                "run_date": pa.array([run_date] * 3, pa.date32()),
            })  # fmt: skip
            write_deltalake(lake.uri(SPEC), table, partition_by=["run_date"], mode="append")
    since = ds.field("ts") >= pa.scalar(T0 + dt.timedelta(days=2), pa.timestamp("us", tz="UTC"))

    got = lake.ray_read(SPEC, run_date=dt.date(2024, 2, 2), where=since, columns=["event_id"])

    assert sorted(r["event_id"] for r in got.take_all()) == [20, 21, 22, 30, 31, 32]
    assert got.schema().names == ["event_id"]
    assert lake.ray_read(SPEC).count() == 24
    assert lake.ray_read(SPEC, version=0).count() == 3
