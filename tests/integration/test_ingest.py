"""Ingest: landing files -> bronze and quarantine, re-runs, and errors that leave the lake unchanged."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shoplake.ingest.bronze import read_bronze
from shoplake.ingest.discover import LandingError
from shoplake.ingest.run import VolumeError, date_range, ingest

D1, D2 = dt.date(2024, 2, 1), dt.date(2024, 2, 2)
ORDERS_HEADER = "order_id,line_number,user_id,item_id,quantity,unit_price,order_ts,status,country\n"


def write(root: Path, source: str, name: str, text: str) -> Path:
    path = root / source / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def landing(cfg) -> Path:
    root = Path(cfg.landing.root)
    write(
        root,
        "orders",
        f"{D1}.csv",
        ORDERS_HEADER
        + "o1,1,u1,i1,2,3.50,2024-02-01T10:00:00Z,placed,UK\n"
        + 'o1,2,u1,i2,1,-1,2024-02-01T10:00:00Z,placed,"Kingdom, United"\n'
        + "o2,1,,i3,two,1.0,2024-02-01 11:00:00,placed,\n"
        + "o3,1,u2,i4,1,1.0,not-a-time,bogus,FR\n",
    )
    # Columns in another order, optional ones absent: matched by name, not position.
    write(
        root,
        "orders",
        f"{D2}.csv",
        "item_id,order_id,line_number,quantity,unit_price,order_ts,status\ni9,o9,1,5,1.25,2024-02-02T09:00:00Z,returned\n",
    )
    events = [
        {"event_id": "e1", "user_id": "u1", "event_type": "view", "item_id": "i1", "event_ts": "2024-02-01T10:00:00Z"},
        {"event_id": "e2", "user_id": "u1", "event_type": "search", "query": "red lamp", "event_ts": "2024-02-01T10:01:00Z"},
        {"event_id": "e3", "user_id": "u1", "event_type": "click", "event_ts": "2024-02-01T10:02:00Z"},
    ]
    write(root, "events", f"{D1}.jsonl", "".join(json.dumps(e) + "\n" for e in events) + "{broken json\n")
    write(root, "events", f"{D2}.jsonl", "")
    (root / "inventory").mkdir()
    for day in (D1, D2):
        table = pa.table(
            {
                "snapshot_date": pa.array([day, day]),
                "item_id": ["i1", "i2"],
                "on_hand": pa.array([5, -1], pa.int32()),
                "lead_time_days": pa.array([3, 3], pa.int32()),
            }
        )
        pq.write_table(table, root / "inventory" / f"{day}.parquet")
    return root


def test_valid_rows_reach_bronze_typed_and_bad_rows_are_quarantined_with_reasons(cfg, lake, landing):
    report = ingest(cfg, lake, [D1, D2])
    assert report.skipped_sources == ["products", "payments", "chargebacks", "ad_events", "support_tickets"]
    assert report.bronze["orders"].rows == 2 and report.quarantine["orders"].rows == 3
    orders = {r.order_id: r for r in lake.read("bronze.orders").collect()}
    assert orders["o1"].unit_price == 3.5 and orders["o1"].quantity == 2
    assert orders["o1"].order_ts == dt.datetime(2024, 2, 1, 10, 0)  # session time zone is UTC
    assert orders["o9"].run_date == D2 and orders["o9"].status == "returned" and orders["o9"].user_id is None
    assert orders["o1"]._source_file.endswith(f"orders/{D1}.csv") and orders["o1"]._row_number == 1

    reasons = {r._row_number: r._reason for r in lake.read("quarantine.orders").collect()}
    assert reasons[2] == "unit_price: must be >= 0"
    assert reasons[3] == "quantity: not a int ('two')"
    assert reasons[4] == "order_ts: not a timestamp ('not-a-time'); status: unknown value, expected one of placed, cancelled, returned"
    raw = json.loads(lake.read("quarantine.orders").where("_row_number = 2").first()._raw)
    assert raw["country"] == "Kingdom, United"

    events = {r._row_number: r._reason for r in lake.read("quarantine.events").collect()}
    assert events[3] == "item_id: required unless event_type is search"
    assert events[4].startswith("record: malformed")
    assert lake.read("bronze.events").where("event_type = 'search'").first().query == "red lamp"

    inventory = lake.read("quarantine.inventory").collect()
    assert {r._reason for r in inventory} == {"on_hand: must be >= 0"} and len(inventory) == 2


def test_rerunning_a_day_replaces_it(cfg, lake, landing):
    ingest(cfg, lake, [D1, D2])
    before = lake.read("bronze.orders").count()
    ingest(cfg, lake, [D1])
    assert lake.read("bronze.orders").count() == before
    assert lake.read("quarantine.orders").count() == 3
    assert lake.version("bronze.orders") == 1


def test_missing_file_is_an_error_naming_it_and_nothing_is_written(cfg, lake, landing):
    (landing / "events" / f"{D2}.jsonl").unlink()
    with pytest.raises(LandingError, match=f"missing landing file for source 'events' on {D2}"):
        ingest(cfg, lake, [D1, D2])
    assert not lake.exists("bronze.orders")


def test_a_missing_day_can_be_read_as_empty(make_cfg, lake, landing):
    cfg = make_cfg("lake.engine=delta-rs", "landing.missing_day=empty")
    ingest(cfg, lake, [D1, D2])
    assert lake.read("bronze.events").where(f"run_date = '{D1}'").count() == 2
    (landing / "events" / f"{D1}.jsonl").unlink()
    # A missing day replacing rows is a shrink: it stops, naming the file expected ...
    with pytest.raises(VolumeError, match=rf"events/{D1}\.\* \(missing, read as empty\): 0 rows would replace the 2 rows"):
        ingest(cfg, lake, [D1, D2])
    # ... unless the run allows it.
    ingest(make_cfg("lake.engine=delta-rs", "landing.missing_day=empty", "ingest.allow_shrink=true"), lake, [D1, D2])
    # The day is replaced by nothing: no stale rows stay behind.
    assert lake.read("bronze.events").count() == 0 and lake.read("quarantine.events").count() == 0
    assert lake.read("bronze.orders").count() == 2


def test_several_days_in_one_file_land_on_their_own_days(cfg, lake, landing):
    for day in (D1, D2):
        (landing / "orders" / f"{day}.csv").unlink()
    write(
        landing, "orders", f"{D1}_{D2 + dt.timedelta(days=1)}.csv",
        ORDERS_HEADER
        + "o1,1,u1,i1,2,3.50,2024-02-01T10:00:00Z,placed,UK\n"
        + "o2,1,u1,i2,1,1.00,2024-02-02T23:59:59Z,placed,UK\n"
        + "o3,1,u1,i3,1,1.00,2024-02-03T08:00:00Z,placed,UK\n"
        + "o4,1,u1,i4,1,1.00,2024-03-09T08:00:00Z,placed,UK\n"
        + "o5,1,u1,i5,1,1.00,whenever,placed,UK\n",
    )  # fmt: skip
    ingest(cfg, lake, [D1, D2])
    bronze = {r.order_id: r.run_date for r in lake.read("bronze.orders").collect()}
    assert bronze == {"o1": D1, "o2": D2}  # o3's day was not asked for
    reasons = {json.loads(r._raw)["order_id"]: (r.run_date, r._reason) for r in lake.read("quarantine.orders").collect()}
    assert reasons["o4"] == (D1, "order_ts: 2024-03-09 is outside the file's days (2024-02-01..2024-02-03)")
    assert reasons["o5"][0] == D1 and reasons["o5"][1].startswith("order_ts: not a timestamp")
    # A re-run of the same days replaces them; nothing doubles.
    ingest(cfg, lake, [D1, D2])
    assert lake.read("bronze.orders").count() == 2 and lake.read("quarantine.orders").count() == 2
    # A day in two files is an error naming both.
    write(landing, "orders", f"{D2}.csv", ORDERS_HEADER)
    with pytest.raises(LandingError, match=rf"{D2} is in several landing files: .*{D2}.csv, .*{D1}_"):
        ingest(cfg, lake, [D2])


def test_missing_required_column_names_the_file(cfg, lake, landing):
    ingest(cfg, lake, [D1])
    write(landing, "orders", f"{D2}.csv", "order_id,line_number,item_id\no1,1,i1\n")
    with pytest.raises(LandingError, match=rf"orders/{D2}.csv: required column\(s\) quantity, unit_price, order_ts, status missing"):
        ingest(cfg, lake, [D1, D2])
    assert lake.version("bronze.orders") == 0


def test_a_failing_source_leaves_every_table_as_it_was(cfg, lake, landing, monkeypatch):
    ingest(cfg, lake, [D1])
    versions = {t: lake.version(t) for t in ("bronze.orders", "bronze.events", "bronze.inventory")}
    import shoplake.ingest.run as run

    real = run.split_valid

    def failing(validated):
        good, bad = real(validated)
        if "snapshot_date" in validated.columns:
            raise RuntimeError("inventory broke")
        return good, bad

    monkeypatch.setattr(run, "split_valid", failing)
    with pytest.raises(RuntimeError, match="inventory broke"):
        ingest(cfg, lake, [D1, D2])
    assert {t: lake.version(t) for t in versions} == versions
    assert lake.read("bronze.orders").where(f"run_date = '{D2}'").count() == 0


def test_no_source_folders_is_an_error(cfg, lake):
    with pytest.raises(LandingError, match="no landing source folders"):
        ingest(cfg, lake, [D1])


def test_date_range_is_inclusive():
    assert date_range(D1, D2) == [D1, D2]
    with pytest.raises(ValueError):
        date_range(D2, D1)


def test_an_imported_sales_table_lands_on_its_days(cfg, lake, tmp_path):
    from shoplake.datagen.generic import import_sales

    src = tmp_path / "sales.csv"
    src.write_text(f"store,day,units\ns1,{D1},3\ns2,{D1},1\ns1,{D2},2\n")
    import_sales(src, cfg.landing.root, series="store", date="day", value="units")
    ingest(cfg, lake, [D1, D2], sources=["orders", "products"])
    rows = sorted((r.item_id, r.run_date, r.quantity) for r in lake.read("bronze.orders").collect())
    assert rows == [("s1", D1, 3), ("s1", D2, 2), ("s2", D1, 1)]
    assert lake.read("quarantine.orders").count() == 0


PAYMENTS_HEADER = "payment_id,order_id,user_id,amount,card_id,payment_ts"
EXTRA_FIELDS = (
    "landing.extra_fields={payments: [{name: risk_score, type: double, role: feature, max: 1}, "
    "{name: channel, type: string, role: category}]}"
)


def test_declared_fields_are_typed_kept_and_checked_and_undeclared_ones_dropped(make_cfg, lake, landing, caplog):
    cfg = make_cfg("lake.engine=delta-rs", EXTRA_FIELDS)
    write(landing, "payments", f"{D1}.csv", f"{PAYMENTS_HEADER},risk_score,coupon,channel\n"
          "p1,o1,u1,10.0,c1,2024-02-01T10:00:00Z,0.75,SAVE5,web\n"
          "p2,o2,u1,12.0,c1,2024-02-01T11:00:00Z,lots,,app\n"
          "p3,o3,u2,14.0,c2,2024-02-01T12:00:00Z,,,\n")  # fmt: skip
    payments = [
        {"payment_id": "p4", "order_id": "o4", "user_id": "u3", "amount": 5, "card_id": "c3", "payment_ts": "2024-02-02T09:00:00Z",
         "risk_score": 1.5, "channel": "web"},
        {"payment_id": "p5", "order_id": "o5", "user_id": "u3", "amount": 6, "card_id": "c3", "payment_ts": "2024-02-02T10:00:00Z",
         "risk_score": 0.1},
    ]  # fmt: skip
    write(landing, "payments", f"{D2}.jsonl", "".join(json.dumps(p) + "\n" for p in payments))
    with caplog.at_level("WARNING", logger="shoplake.ingest.readers"):
        report = ingest(cfg, lake, [D1, D2], sources=["payments"])
    assert any("payments/2024-02-01.csv" in r.message and "ignored: coupon" in r.message for r in caplog.records)
    assert report.bronze["payments"].rows == 3 and report.quarantine["payments"].rows == 2
    bronze = lake.to_arrow("bronze.payments")
    assert "coupon" not in bronze.column_names
    assert str(bronze.schema.field("risk_score").type) == "double"
    kept = {r["payment_id"]: (r["risk_score"], r["channel"]) for r in bronze.to_pylist()}
    assert kept == {"p1": (0.75, "web"), "p3": (None, None), "p5": (0.1, None)}
    reasons = {json.loads(r._raw)["payment_id"]: r._reason for r in lake.read("quarantine.payments").collect()}
    assert reasons == {"p2": "risk_score: not a double ('lots')", "p4": "risk_score: must be <= 1"}


def test_a_declared_field_missing_from_a_file_names_the_file_and_the_field(make_cfg, lake, landing):
    cfg = make_cfg("lake.engine=delta-rs", EXTRA_FIELDS)
    write(landing, "payments", f"{D1}.csv", f"{PAYMENTS_HEADER},risk_score\np1,o1,u1,10.0,c1,2024-02-01T10:00:00Z,0.5\n")
    with pytest.raises(LandingError, match=rf"payments/{D1}.csv: field\(s\) channel declared in landing.extra_fields.payments missing"):
        ingest(cfg, lake, [D1])
    assert not lake.exists("bronze.orders") and not lake.exists("bronze.payments")
    (landing / "payments" / f"{D1}.csv").unlink()
    record = {"payment_id": "p1", "order_id": "o1", "user_id": "u1", "amount": 1, "card_id": "c1", "payment_ts": "2024-02-01T10:00:00Z"}
    write(landing, "payments", f"{D1}.jsonl", json.dumps(record) + "\n")
    with pytest.raises(LandingError, match=rf"payments/{D1}.jsonl: field\(s\) risk_score, channel declared"):
        ingest(cfg, lake, [D1])


def test_declaring_a_field_grows_an_existing_bronze_table(make_cfg, lake, landing):
    write(landing, "payments", f"{D1}.csv", f"{PAYMENTS_HEADER}\np1,o1,u1,10.0,c1,2024-02-01T10:00:00Z\n")
    ingest(make_cfg("lake.engine=delta-rs"), lake, [D1], sources=["payments"])
    # Declared but not ingested since: the features read the field as null, the table is left as it is.
    declared = read_bronze(lake, make_cfg("lake.engine=delta-rs", EXTRA_FIELDS), "payments")
    assert [(r.payment_id, r.risk_score, r.channel) for r in declared.collect()] == [("p1", None, None)]
    assert lake.version("bronze.payments") == 0
    write(landing, "payments", f"{D2}.csv", f"{PAYMENTS_HEADER},risk_score,channel\np2,o2,u1,10.0,c1,2024-02-02T10:00:00Z,0.5,app\n")
    ingest(make_cfg("lake.engine=delta-rs", EXTRA_FIELDS), lake, [D2], sources=["payments"])
    rows = {r["payment_id"]: (r["risk_score"], r["channel"]) for r in lake.to_arrow("bronze.payments").to_pylist()}
    assert rows == {"p1": (None, None), "p2": (0.5, "app")}
