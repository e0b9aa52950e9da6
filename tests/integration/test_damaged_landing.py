"""Damaged landing files, as a shop's feed really fails: nothing lost, nothing doubled, and a message naming the file."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pytest

from shoplake.ingest.discover import LandingError
from shoplake.ingest.guard import VolumeError
from shoplake.ingest.readers import CSV_MALFORMED, CUT_SHORT, HEADER_AGAIN, JSON_MALFORMED, NOT_UTF8
from shoplake.ingest.run import ingest

D1 = dt.date(2024, 2, 1)
DAYS = [D1 + dt.timedelta(days=i) for i in range(5)]
HEADER = "order_id,line_number,user_id,item_id,quantity,unit_price,order_ts,status,country\n"


def _order(i: int, country: str = "UK") -> str:
    return f"o{i},1,u{i % 3},i{i},1,2.5,2024-02-01T10:{i % 60:02d}:00Z,placed,{country}\n"


def _event(i: int, day: dt.date = D1) -> str:
    record = {"event_id": f"e{i}", "user_id": "u1", "event_type": "view", "item_id": f"i{i}", "event_ts": f"{day}T09:00:00Z"}
    return json.dumps(record) + "\n"


def _ad_events(day: dt.date, n: int) -> str:
    keys = ("ad_event_id", "impression_id", "event_type", "item_id", "campaign_id", "placement", "cost", "event_ts")
    rows = [(f"a{day:%m%d}-{i}", f"m{i}", "impression", f"i{i % 7}", "c1", "search_top", 0.01, f"{day}T12:00:00Z") for i in range(n)]
    return "".join(json.dumps(dict(zip(keys, r, strict=True))) + "\n" for r in rows)


def _write(root: Path, source: str, name: str, data: str | bytes) -> Path:
    path = root / source / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def _quarantined(lake, source: str) -> dict[tuple[str, int], str]:
    return {(r._source_file.rsplit("/", 1)[-1], r._row_number): r._reason for r in lake.read(f"quarantine.{source}").collect()}


def _ids(lake, table: str, column: str) -> list[str]:
    return sorted(r[0] for r in lake.read(table).select(column).collect())


def test_a_csv_cut_mid_row_lands_its_whole_rows_and_quarantines_the_cut_one(cfg, lake):
    whole = HEADER + "".join(_order(i) for i in range(1, 18))
    cut = whole[: whole.index("o8,") + len(_order(8)) - 2]  # inside row 8's last field: "UK" became "U"
    _write(Path(cfg.landing.root), "orders", f"{D1}.csv", cut)
    report = ingest(cfg, lake, [D1], ["orders"])
    assert _ids(lake, "bronze.orders", "order_id") == sorted(f"o{i}" for i in range(1, 8))
    assert _quarantined(lake, "orders") == {(f"{D1}.csv", 8): CUT_SHORT}  # nothing that arrived is lost
    (note,) = report.notes
    assert note.endswith(f"orders/{D1}.csv: 1 damaged record(s) quarantined (record 8: {CUT_SHORT}); the file's other rows landed")


def test_malformed_and_undecodable_records_are_quarantined_and_the_rest_of_the_file_lands(cfg, lake):
    root = Path(cfg.landing.root)
    orders = HEADER + _order(1) + _order(2) + "o3,1,u1,i3\n" + _order(4) + _order(5, "Fran\udcffce") + _order(6)
    _write(root, "orders", f"{D1}.csv.gz", gzip.compress(orders.encode("utf-8", "surrogateescape")))
    events = _event(1) + '{"event_id": "e2", "user_id": \n' + _event(3) + _event(4).replace("i4", "i\udcff4") + "\n" + _event(6)
    _write(root, "events", f"{D1}.jsonl", events.encode("utf-8", "surrogateescape"))
    report = ingest(cfg, lake, [D1], ["orders", "events"])
    assert _ids(lake, "bronze.orders", "order_id") == ["o1", "o2", "o4", "o6"]
    assert _quarantined(lake, "orders") == {
        (f"{D1}.csv.gz", 3): CSV_MALFORMED,
        (f"{D1}.csv.gz", 5): "country: not valid UTF-8",
    }
    assert _ids(lake, "bronze.events", "event_id") == ["e1", "e3", "e6"]
    assert _quarantined(lake, "events") == {(f"{D1}.jsonl", 2): JSON_MALFORMED, (f"{D1}.jsonl", 4): NOT_UTF8}
    raw = lake.read("quarantine.events").where("_row_number = 4").first()._raw
    assert json.loads(raw)["item_id"] == "i\ufffd4"  # kept as it arrived, the bad byte replaced
    assert [n.split(": ", 1)[1] for n in report.notes] == [
        f"2 damaged record(s) quarantined (record 3: {CSV_MALFORMED}, and 1 more); the file's other rows landed",
        f"2 damaged record(s) quarantined (record 2: {JSON_MALFORMED}, and 1 more); the file's other rows landed",
    ]
    assert f"orders/{D1}.csv.gz" in report.notes[0] and f"events/{D1}.jsonl" in report.notes[1]


def test_a_truncated_gzip_or_unreadable_file_is_one_line_naming_it_and_the_lake_stays_as_it_was(cfg, lake):
    root = Path(cfg.landing.root)
    _write(root, "orders", f"{D1}.csv", HEADER + _order(1))
    ingest(cfg, lake, [D1], ["orders"])
    packed = gzip.compress((HEADER + "".join(_order(i) for i in range(1, 500))).encode())
    _write(root, "orders", f"{DAYS[1]}.csv.gz", packed[: len(packed) * 2 // 3])
    with pytest.raises(LandingError) as err:
        ingest(cfg, lake, [D1, DAYS[1]], ["orders"])
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{root}/orders/{DAYS[1]}.csv.gz: unreadable, the gzip data is damaged or cut short")
    (root / "orders" / f"{DAYS[1]}.csv.gz").unlink()
    _write(root, "orders", f"{DAYS[1]}.parquet", b"PAR1 this is not parquet")
    with pytest.raises(LandingError, match=rf"^{root}/orders/{DAYS[1]}\.parquet: not a readable Parquet file"):
        ingest(cfg, lake, [D1, DAYS[1]], ["orders"])
    assert lake.version("bronze.orders") == 0 and lake.version("quarantine.orders") == 0
    assert _ids(lake, "bronze.orders", "order_id") == ["o1"]


def test_a_day_delivered_twice_never_doubles(cfg, make_cfg, lake):
    root = Path(cfg.landing.root)
    rows = "".join(_order(i) for i in range(1, 18))
    _write(root, "orders", f"{D1}.csv", HEADER + rows + HEADER + rows)  # the day's file appended to itself
    _write(root, "events", f"{D1}.jsonl", "".join(_event(i) for i in range(1, 6)) * 2)
    report = ingest(cfg, lake, [D1], ["orders", "events"])
    assert _ids(lake, "bronze.orders", "order_id") == sorted(f"o{i}" for i in range(1, 18))
    assert _ids(lake, "bronze.events", "event_id") == [f"e{i}" for i in range(1, 6)]
    assert _quarantined(lake, "orders") == {(f"{D1}.csv", 18): HEADER_AGAIN}
    assert any(f"orders/{D1}.csv: 17 row(s) repeating an earlier row" in n and "dropped" in n for n in report.notes)
    assert any(f"events/{D1}.jsonl: 5 row(s) repeating an earlier row" in n for n in report.notes)
    ingest(cfg, lake, [D1], ["orders", "events"])  # a re-run replaces the day
    assert lake.read("bronze.orders").count() == 17 and lake.read("bronze.events").count() == 5

    # Quarantined instead of dropped; and one key with other values is quarantined either way.
    _write(root, "events", f"{D1}.jsonl", "".join(_event(i) for i in range(1, 6)) * 2 + _event(1).replace('"view"', '"click"'))
    ingest(make_cfg(f"lake.engine={cfg.lake.engine}", "ingest.duplicates=quarantine"), lake, [D1], ["events"])
    assert _ids(lake, "bronze.events", "event_id") == [f"e{i}" for i in range(1, 6)]
    reasons = _quarantined(lake, "events")
    assert reasons[(f"{D1}.jsonl", 6)] == f"duplicate: repeats events/{D1}.jsonl record 1 (same key event_id=e1 and values)"
    assert reasons[(f"{D1}.jsonl", 11)] == f"duplicate key event_id=e1: events/{D1}.jsonl record 1 has it with other values"
    assert len(reasons) == 6


def test_an_empty_or_much_smaller_file_replacing_a_day_stops_naming_the_file_and_the_counts(cfg, make_cfg, lake):
    root = Path(cfg.landing.root)
    _write(root, "ad_events", f"{D1}.jsonl", _ad_events(D1, 112))
    ingest(cfg, lake, [D1], ["ad_events"])
    for smaller in ("", _ad_events(D1, 40)):
        path = _write(root, "ad_events", f"{D1}.jsonl", smaller)
        with pytest.raises(VolumeError) as err:
            ingest(cfg, lake, [D1], ["ad_events"])
        rows = len(smaller.splitlines())
        assert str(err.value) == (
            f"{path}: {rows} rows would replace the 112 rows bronze.ad_events holds for {D1} (less than ingest.shrink_ratio=0.5 "
            "of them); nothing was written; to write anyway, run with --allow-shrink or set ingest.allow_shrink=true"
        )
    assert lake.version("bronze.ad_events") == 0 and lake.read("bronze.ad_events").count() == 112
    ingest(make_cfg(f"lake.engine={cfg.lake.engine}", "ingest.allow_shrink=true"), lake, [D1], ["ad_events"])
    assert lake.read("bronze.ad_events").count() == 40


def test_a_day_far_above_the_recent_days_stops_unless_allowed(cfg, make_cfg, lake):
    root = Path(cfg.landing.root)
    for i, day in enumerate(DAYS[:4]):
        _write(root, "ad_events", f"{day}.jsonl", _ad_events(day, 110 + i))
    ingest(cfg, lake, DAYS[:4], ["ad_events"])
    path = _write(root, "ad_events", f"{DAYS[4]}.jsonl", _ad_events(DAYS[4], 11_200))
    with pytest.raises(VolumeError, match=rf"^{path}: 11200 rows for {DAYS[4]}, far outside the recent days of bronze.ad_events "
                       rf"\(median 111.5 rows over 4 days with rows from {D1} to {DAYS[3]}; ingest.volume_factor=10\)"):  # fmt: skip
        ingest(cfg, lake, [DAYS[4]], ["ad_events"])
    assert lake.version("bronze.ad_events") == 0
    ingest(make_cfg(f"lake.engine={cfg.lake.engine}", "ingest.allow_shrink=true"), lake, [DAYS[4]], ["ad_events"])
    assert lake.read("bronze.ad_events").where(f"run_date = '{DAYS[4]}'").count() == 11_200
