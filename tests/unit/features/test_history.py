"""History tables on a hand-made source: what each night adds and closes, which event days it rewrites, a re-run."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from pyspark.sql import Window
from pyspark.sql import functions as F

from shoplake import columns as C
from shoplake.features.history import History, HistoryState, _last_change_from_stats, read_as_of, touched_groups
from shoplake.features.run import FeatureContext
from shoplake.lake.spec import Col, TableSpec, history_columns

G, V, TS, OP = "g", "v", "ts", "op"
SPEC = TableSpec(
    name="toy_history",
    layer="silver",
    columns=(Col(G, "string", False), Col(V, "string", False), Col(TS, "timestamp", False), *history_columns("fact")),
    keys=(G, V, TS, C.KNOWN_FROM),
    partition_by=(C.EVENT_DATE,),
)
DAY = [dt.date(2024, 5, d) for d in range(1, 8)]


def at(day: dt.date, hour: int = 12) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=dt.timezone.utc)


# (group, value, event time, op, landing day): a fact stands while its latest op landed so far is "add".
ROWS = [
    ("g1", "a", at(DAY[0]), "add", DAY[0]),
    ("g1", "b", at(DAY[0], 13), "add", DAY[0]),
    ("g2", "c", at(DAY[1]), "add", DAY[1]),
    ("g1", "a", at(DAY[0]), "remove", DAY[3]),  # a late retraction of a day-1 fact
    ("g3", "d", at(DAY[3]), "add", DAY[3]),
]


def _facts(ctx, groups, day):
    rows = ctx.landed_before("src", day)
    if groups is not None:
        rows = rows.join(groups, [G], "left_semi")
    latest = Window.partitionBy(G, V, TS).orderBy(F.col(C.RUN_DATE).desc())
    return rows.withColumn("_n", F.row_number().over(latest)).where((F.col("_n") == 1) & (F.col(OP) == "add")).select(G, V, TS)


TOY = History(
    spec=SPEC,
    identity=(G, V, TS),
    group=(G,),
    ts=TS,
    facts=_facts,
    touched=lambda ctx, since, day: touched_groups([(ctx.landed_before("src", day), TS)], (G,), since, day),
    window_days=lambda cfg: 30,
)


def _night(lake, spark, ctx, day, rewind=False):
    state = HistoryState(TOY, lake, spark)
    replayed = state.rewind(day) if rewind else []
    for d in sorted({*replayed, day}):
        state.advance(ctx, d)
    rows, mode, partitions = state.output()
    lake.write(rows, SPEC, mode=mode, partitions=partitions)
    return partitions


def _view(lake, day) -> set[str]:
    return set(read_as_of(lake, TOY, day, 30, [V]).column(V).to_pylist())


def test_nights_add_close_and_rewrite_only_the_changed_event_days(spark, lake, cfg):
    schema = f"{G} string, {V} string, {TS} timestamp, {OP} string, {C.RUN_DATE} date"
    ctx = FeatureContext(cfg, {"src": spark.createDataFrame(ROWS, schema)})
    try:
        assert _night(lake, spark, ctx, DAY[2]) is None  # the first night writes the whole table
        assert _view(lake, DAY[2]) == {"a", "b", "c"}

        # Day 4 lands the retraction of a (event day 1) and d (event day 4): those two days are rewritten, not day 2.
        partitions = _night(lake, spark, ctx, DAY[4])
        assert partitions == {C.EVENT_DATE: [DAY[0].isoformat(), DAY[3].isoformat()]}
        assert _view(lake, DAY[4]) == {"b", "c", "d"}
        assert _view(lake, DAY[2]) == {"a", "b", "c"}  # the earlier snapshot keeps the retracted fact
        # One file per event day, whatever the tasks of the write.
        assert lake.file_count(SPEC) == 3

        stored = lake.to_arrow(SPEC).sort_by([(V, "ascending")])
        assert stored.column(V).to_pylist() == ["a", "b", "c", "d"]
        assert stored.column(C.KNOWN_FROM).to_pylist() == [DAY[2], DAY[2], DAY[2], DAY[4]]
        assert stored.column(C.KNOWN_UNTIL).to_pylist() == [DAY[4], None, None, None]

        # The last change date comes from the files' statistics (day 5: d added, a closed) and agrees with the rows.
        assert _last_change_from_stats(lake.add_actions(SPEC)) == DAY[4]
        state = HistoryState(TOY, lake, spark)
        assert state.last == HistoryState._last_change(lake.read(SPEC)) == DAY[4]

        # A night without new landing rows changes nothing and writes nothing.
        state.advance(ctx, DAY[6])
        assert state.output() is None

        # Re-running day 5 rewinds to before it and builds it again: the same rows.
        _night(lake, spark, ctx, DAY[4], rewind=True)
        assert lake.to_arrow(SPEC).sort_by([(V, "ascending")]).to_pylist() == stored.to_pylist()
    finally:
        ctx.release()


def test_touched_groups_are_those_with_new_landing_rows_or_newly_past_event_times(spark):
    schema = f"{G} string, {TS} timestamp, {C.RUN_DATE} date"
    rows = [
        ("old", at(DAY[0]), DAY[0]),
        ("new", at(DAY[2]), DAY[2]),
        ("early", at(DAY[3]), DAY[1]),  # landed before it happened: touched when its time passes
        (None, at(DAY[2]), DAY[2]),
    ]
    frame = spark.createDataFrame(rows, schema)
    got = touched_groups([(frame, TS), (None, TS)], (G,), DAY[2], DAY[4])
    assert sorted(r[G] for r in got.collect()) == ["early", "new"]


def test_the_last_change_is_read_from_file_statistics_only_when_every_file_has_them():
    def files(known_from, known_until, open_rows, rows):
        return pa.table(
            {
                f"max.{C.KNOWN_FROM}": pa.array(known_from, pa.date32()),
                f"max.{C.KNOWN_UNTIL}": pa.array(known_until, pa.date32()),
                f"null_count.{C.KNOWN_UNTIL}": pa.array(open_rows, pa.int64()),
                "num_records": pa.array(rows, pa.int64()),
            }
        )

    # A later close in one file, an open-only file (no known_until maximum) in another.
    assert _last_change_from_stats(files([DAY[1], DAY[2]], [DAY[3], None], [1, 4], [2, 4])) == DAY[3]
    assert _last_change_from_stats(files([DAY[1], DAY[2]], [None, None], [2, 4], [2, 4])) == DAY[2]
    # A file with closed rows but no known_until maximum, or without a known_from maximum: no statistics to trust.
    assert _last_change_from_stats(files([DAY[1], DAY[2]], [DAY[3], None], [1, 3], [2, 4])) is None
    assert _last_change_from_stats(files([DAY[1], None], [DAY[3], None], [1, 4], [2, 4])) is None
    assert _last_change_from_stats(pa.table({"num_records": pa.array([3], pa.int64())})) is None
