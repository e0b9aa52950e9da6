"""The generic importers: a shop's interaction log and sales table as several-day landing files."""

from __future__ import annotations

import datetime as dt

import pyarrow.parquet as pq
import pytest

from shoplake.datagen.generic import ImportInputError, import_interactions, import_sales
from shoplake.ingest.discover import find_files


def test_interactions_become_purchase_events_and_products_in_one_file_each(tmp_path):
    src = tmp_path / "ratings.csv"
    src.write_text("userId,movieId,rating,timestamp,title\n1,10,5,86400,Heat\n1,11,2,90000,Ran\n2,10,4.5,172800,Heat\n")
    report = import_interactions(src, tmp_path / "landing", user="userId", item="movieId", timestamp="timestamp",
                                 value="rating", min_value=4, item_text="title")  # fmt: skip
    assert report["rows_read"] == 3 and report["rows_below_min_value"] == 1
    assert (report["first_day"], report["last_day"]) == (dt.date(1970, 1, 2), dt.date(1970, 1, 3))
    events = pq.read_table(tmp_path / "landing" / "events" / "1970-01-02_1970-01-03.parquet").to_pylist()
    assert [(e["user_id"], e["item_id"], e["event_type"]) for e in events] == [("1", "10", "purchase"), ("2", "10", "purchase")]
    assert len({e["event_id"] for e in events}) == 2
    products = pq.read_table(tmp_path / "landing" / "products" / "1970-01-02_1970-01-03.parquet").to_pylist()
    assert [(p["item_id"], p["title"]) for p in products] == [("10", "Heat")]
    # Ingest sees one file covering both days.
    files = find_files(str(tmp_path / "landing"), "events", [dt.date(1970, 1, 2), dt.date(1970, 1, 3)])
    assert [(f.day, f.last) for f in files] == [(dt.date(1970, 1, 2), dt.date(1970, 1, 3))]


def test_sales_become_one_order_line_per_series_and_day_with_sales(tmp_path):
    src = tmp_path / "sales.csv"
    src.write_text("store,week,units,price\ns1,2024-01-01,3,2.5\ns1,2024-01-08,0,2.5\ns2,2024-01-08,7,1\n")
    report = import_sales(src, tmp_path / "landing", series="store", date="week", value="units", price="price")
    assert report["rows_written"] == {"orders": 2, "products": 2} and report["series"] == 2
    orders = pq.read_table(tmp_path / "landing" / "orders" / "2024-01-01_2024-01-08.parquet").to_pylist()
    assert [(o["item_id"], o["quantity"], o["unit_price"], o["status"]) for o in orders] == [
        ("s1", 3, 2.5, "placed"),
        ("s2", 7, 1.0, "placed"),
    ]
    assert orders[0]["order_ts"] == dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("s,d,v\ns1,2024-01-01,1.5\n", {}, r"row 2, v: not whole units"),
        ("s,d,v\ns1,2024-01-01,1\ns1,someday,2\n", {}, r"row 3, d: not a date or time"),
        ("s,d,v\ns1,2024-01-01,-1\n", {}, r"row 2, v: negative sales"),
        ("s,d,v\n,2024-01-01,1\n", {}, r"row 2, s: empty"),
        ("s,d,v\ns1,2024-01-01,1\n", {"price": "p"}, r"no column\(s\) p \(file has: s, d, v\)"),
    ],
)
def test_bad_sales_rows_are_named_and_nothing_is_written(tmp_path, text, kwargs, message):
    src = tmp_path / "sales.csv"
    src.write_text(text)
    with pytest.raises(ImportInputError, match=message):
        import_sales(src, tmp_path / "landing", series="s", date="d", value="v", **kwargs)
    assert not (tmp_path / "landing").exists()


def test_amounts_land_as_one_unit_at_the_amount_so_they_are_never_rounded(tmp_path):
    src = tmp_path / "revenue.csv"
    src.write_text("store,day,revenue\ns1,2024-01-01,12.34\ns1,2024-01-02,0\ns2,2024-01-02,0.5\n")
    report = import_sales(src, tmp_path / "landing", series="store", date="day", value="revenue", value_kind="amount")
    assert report["value_kind"] == "amount" and report["rows_written"]["orders"] == 2
    orders = pq.read_table(tmp_path / "landing" / "orders" / "2024-01-01_2024-01-02.parquet").to_pylist()
    assert [(o["item_id"], o["quantity"], o["unit_price"]) for o in orders] == [("s1", 1, 12.34), ("s2", 1, 0.5)]
    with pytest.raises(ImportInputError, match="a price column applies to units"):
        import_sales(src, tmp_path / "other", series="store", date="day", value="revenue", price="store", value_kind="amount")
    with pytest.raises(ImportInputError, match="not whole units \\(import it with value kind amount"):
        import_sales(src, tmp_path / "other", series="store", date="day", value="revenue")
