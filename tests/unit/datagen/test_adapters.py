"""Adapters for public datasets -> landing files: Online Retail, Bitext, PriceRunner.

Most tests run on a few days / the whole of the real files under ../shared/data (they
are small); rule tests use hand-written inputs so each set-aside reason is exercised.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from shoplake import columns as C
from shoplake.datagen import bitext, online_retail
from shoplake.datagen.bitext import RESOLUTIONS, import_bitext, render_resolution
from shoplake.datagen.online_retail import derive_categories, import_online_retail, title_case
from shoplake.datagen.pricerunner import brand_from_title, import_pricerunner
from shoplake.ingest.landing import ORDER_STATUSES, get_source

DATA = Path(__file__).resolve().parents[4] / "shared" / "data"
RETAIL = DATA / "online-retail" / "by-day"
BITEXT = DATA / "bitext-customer-service"
PRICERUNNER = DATA / "pricerunner-products" / "pricerunner_aggregate.csv.gz"

# Three real days with cancellations, guests, postage/manual lines and stock write-offs.
RETAIL_DAYS = ("2010-12-01", "2010-12-03")

needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"the public datasets are read in place from {DATA}, outside the repository, and this checkout has none"
)


def read_landing(root: Path, source: str) -> pd.DataFrame:
    """All CSV landing files of a source, strings as written, nulls as NaN, plus ``_day``."""
    frames = []
    for path in sorted((root / source).glob("*.csv")):
        frame = pd.read_csv(path, dtype=str)
        frame["_day"] = path.name[: -len(".csv")]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def file_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_contract_columns(frame: pd.DataFrame, source: str) -> None:
    contract = get_source(source)
    assert [c for c in frame.columns if c != "_day"] == contract.field_names
    for name in contract.required_fields:
        assert frame[name].notna().all(), f"{source}.{name} has nulls"


# --------------------------------------------------------------------------- online retail


@pytest.fixture(scope="module")
def retail(tmp_path_factory):
    out = tmp_path_factory.mktemp("retail")
    report = import_online_retail(RETAIL, out, start=RETAIL_DAYS[0], end=RETAIL_DAYS[1])
    return out, report


@needs_data
def test_retail_counts_reconcile(retail):
    out, report = retail
    raw = sum(len(pd.read_csv(p, dtype=str)) for p in sorted(RETAIL.glob("*.csv.gz"))[:3])
    orders = read_landing(out, "orders")
    products = read_landing(out, "products")
    set_aside = sum(report["rows_set_aside"].values())

    assert report["rows_read"] == raw
    assert report["rows_read"] == report["rows_written"]["orders"] + set_aside
    assert len(orders) == report["rows_written"]["orders"]
    assert len(products) == report["rows_written"]["products"]
    audit = out / online_retail.SET_ASIDE_DIR
    non_product = pd.read_csv(audit / online_retail.NON_PRODUCT_FILE, dtype=str)
    quality = pd.read_csv(audit / online_retail.DATA_QUALITY_FILE, dtype=str)
    assert len(non_product) + len(quality) == set_aside
    assert len(non_product) == report["rows_set_aside"][online_retail.REASON_NON_PRODUCT]
    assert len(non_product) == sum(report["non_product_codes"].values())
    assert json.loads((out / "_import_report_online_retail.json").read_text()) == report
    # The first days have all of these; a zero would mean a rule stopped matching.
    assert report["non_product_codes"]["POST"] > 0
    assert report["rows_set_aside"][online_retail.REASON_NEGATIVE_QTY] > 0
    assert report["guest_order_lines"] > 0 and report["cancelled_lines"] > 0


@needs_data
def test_retail_one_file_per_day_and_contract(retail):
    out, report = retail
    days = ["2010-12-01", "2010-12-02", "2010-12-03"]
    assert report["days_written"] == 3
    for source in ("orders", "products"):
        assert sorted(p.name for p in (out / source).iterdir()) == [f"{d}.csv" for d in days]
    orders = read_landing(out, "orders")
    assert_contract_columns(orders, "orders")
    assert_contract_columns(read_landing(out, "products"), "products")
    assert (orders[C.ORDER_TS].str[:10] == orders["_day"]).all()
    assert orders[C.LINE_NUMBER].astype(int).min() >= 1
    assert orders[C.UNIT_PRICE].astype(float).min() >= 0
    assert orders[C.STATUS].isin(ORDER_STATUSES).all()
    assert not orders.duplicated([C.ORDER_ID, C.LINE_NUMBER, C.STATUS]).any()


@needs_data
def test_retail_cancellations_guests_and_codes(retail):
    out, report = retail
    orders = read_landing(out, "orders")
    cancelled = orders[C.ORDER_ID].str.startswith("C")
    assert (orders.loc[cancelled, C.STATUS] == "cancelled").all()
    assert (orders.loc[~cancelled, C.STATUS] == "placed").all()
    assert cancelled.sum() == report["cancelled_lines"]
    assert (orders[C.QUANTITY].astype(int) > 0).all()

    guests = orders[C.USER_ID].isna()
    assert guests.sum() == report["guest_order_lines"]
    assert orders.loc[~guests, C.USER_ID].str.fullmatch(r"\d+").all()

    assert orders[C.ITEM_ID].str.fullmatch(online_retail.PRODUCT_CODE_PATTERN).all()
    assert not set(report["non_product_codes"]) & set(orders[C.ITEM_ID])


@needs_data
def test_retail_items_in_catalogue_before_first_order(retail):
    out, _ = retail
    orders = read_landing(out, "orders")
    products = read_landing(out, "products")
    assert products[C.ITEM_ID].is_unique
    assert (products[C.TITLE].str.strip() != "").all()
    assert products[C.BRAND].isna().all()
    assert (products[C.ON_PROMOTION] == "false").all()
    assert (products[C.PRICE].astype(float) >= 0).all()
    listed = products.set_index(C.ITEM_ID)["_day"]
    first_order = orders.groupby(C.ITEM_ID)["_day"].min()
    assert set(first_order.index) <= set(listed.index)
    assert (listed.reindex(first_order.index) <= first_order).all()
    assert set(listed.index) <= set(first_order.index)


@needs_data
def test_retail_is_deterministic(retail, tmp_path):
    out, _ = retail
    import_online_retail(RETAIL, tmp_path, days=["2010-12-01", "2010-12-02", "2010-12-03"])
    assert file_bytes(tmp_path) == file_bytes(out)


@needs_data
def test_retail_day_filters(tmp_path):
    report = import_online_retail(RETAIL, tmp_path, start="2011-01-01", limit_days=2)
    # There are no files from 2010-12-24 to 2011-01-03 (holidays): the first two after.
    assert (report["first_day"], report["last_day"]) == ("2011-01-04", "2011-01-05")
    assert sorted(p.name for p in (tmp_path / "orders").iterdir()) == ["2011-01-04.csv", "2011-01-05.csv"]
    with pytest.raises(ValueError, match="no day files"):
        import_online_retail(RETAIL, tmp_path / "none", start="2012-01-01")


@needs_data
@pytest.mark.slow
def test_retail_full_import(tmp_path):
    report = import_online_retail(RETAIL, tmp_path)
    assert report["rows_read"] == 541_909
    assert report["days_written"] == 374  # 2010-12-01..2011-12-09, every calendar day
    assert report["days_without_sales"] == 374 - 305
    assert report["rows_read"] == report["rows_written"]["orders"] + sum(report["rows_set_aside"].values())
    orders = read_landing(tmp_path, "orders")
    products = read_landing(tmp_path, "products")
    assert len(orders) == report["rows_written"]["orders"]
    listed = products.set_index(C.ITEM_ID)["_day"]
    first_order = orders.groupby(C.ITEM_ID)["_day"].min()
    assert (listed.reindex(first_order.index) <= first_order).all()


def _write_day(folder: Path, day: str, rows: list[tuple]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    header = ",".join(online_retail.SRC_COLUMNS)
    body = "\n".join(",".join(str(v) for v in row) for row in rows)
    with gzip.open(folder / f"{day}.csv.gz", "wt", encoding="utf-8") as f:
        f.write(f"{header}\n{body}\n")


def test_retail_set_aside_rules(tmp_path):
    src = tmp_path / "src"
    ts1, ts2 = "2011-03-01 09:00:00", "2011-03-02 10:30:00"
    _write_day(
        src,
        "2011-03-01",
        [
            ("500001", "85123a", "WHITE HANGING HEART T-LIGHT HOLDER", 6, ts1, 2.55, "17850.0", "United Kingdom"),
            ("500001", "POST", "POSTAGE", 1, ts1, 18.0, "17850.0", "United Kingdom"),
            ("500001", "22423", "REGENCY CAKESTAND 3 TIER", 0, ts1, 12.75, "17850.0", "United Kingdom"),
            ("500001", "22423", "REGENCY CAKESTAND 3 TIER", 2, ts1, -1.0, "17850.0", "United Kingdom"),
            ("500002", "22139", "", 56, ts1, 0.0, "", "United Kingdom"),
            ("500003", "21134", "damaged", -3, ts1, 0.0, "", "United Kingdom"),
            ("500004", "22841", "ROUND CAKE TIN VINTAGE GREEN", 1, ts1, 0.0, "12647.0", "France"),
            ("500005", "85123A", "CREAM HANGING HEART T-LIGHT HOLDER", 2, ts1, 2.95, "", "United Kingdom"),
        ],
    )
    _write_day(
        src,
        "2011-03-02",
        [
            ("C500006", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", -2, ts2, 2.65, "17850.0", "United Kingdom"),
            ("500007", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 4, ts2, 2.75, "13047.0", "United Kingdom"),
            ("500007", "gift_0001_20", "Dotcomgiftshop Gift Voucher £20.00", 1, ts2, 16.67, "13047.0", "Spain"),
        ],
    )
    out = tmp_path / "landing"
    report = import_online_retail(src, out)

    assert report["rows_read"] == 11
    assert report["rows_set_aside"] == {
        online_retail.REASON_NON_PRODUCT: 2,
        online_retail.REASON_QUANTITY_ZERO: 1,
        online_retail.REASON_PRICE_NEGATIVE: 1,
        online_retail.REASON_NEGATIVE_QTY: 1,
        online_retail.REASON_ZERO_PRICE_GUEST: 1,
    }
    assert report["non_product_codes"] == {"GIFT_0001_20": 1, "POST": 1}
    assert report["free_lines_kept"] == 1
    orders = read_landing(out, "orders")
    got = orders[[C.ORDER_ID, C.LINE_NUMBER, C.USER_ID, C.ITEM_ID, C.QUANTITY, C.STATUS]].fillna("").values.tolist()
    assert got == [
        ["500001", "1", "17850", "85123A", "6", "placed"],
        ["500004", "1", "12647", "22841", "1", "placed"],
        ["500005", "1", "", "85123A", "2", "placed"],
        ["C500006", "1", "17850", "85123A", "2", "cancelled"],
        ["500007", "1", "13047", "85123A", "4", "placed"],
    ]
    # Set-aside lines keep their source line number in the audit file.
    audit = pd.read_csv(out / online_retail.SET_ASIDE_DIR / online_retail.DATA_QUALITY_FILE, dtype=str)
    assert audit[[online_retail.AUDIT_LINE_NUMBER, online_retail.AUDIT_REASON]].values.tolist() == [
        ["3", online_retail.REASON_QUANTITY_ZERO],
        ["4", online_retail.REASON_PRICE_NEGATIVE],
        ["1", online_retail.REASON_ZERO_PRICE_GUEST],
        ["1", online_retail.REASON_NEGATIVE_QTY],
    ]

    products = read_landing(out, "products").set_index(C.ITEM_ID)
    assert sorted(products.index) == ["22841", "85123A"]
    holder = products.loc["85123A"]
    # Most frequent description wins; price is the median of placed lines only.
    assert holder[C.TITLE] == "White Hanging Heart T-Light Holder"
    assert holder[C.CATEGORY] == "holder"
    assert float(holder[C.PRICE]) == pytest.approx(2.75)
    assert holder[C.UPDATED_AT] == "2011-03-01T09:00:00Z"
    assert (out / "products" / "2011-03-02.csv").exists()
    assert read_landing(out, "products")["_day"].tolist() == ["2011-03-01", "2011-03-01"]


def test_title_case_and_categories():
    assert title_case("CHILDREN'S APRON  DOLLY GIRL ") == "Children's Apron Dolly Girl"
    assert title_case("WHITE HANGING HEART T-LIGHT HOLDER") == "White Hanging Heart T-Light Holder"
    titles = [
        "WHITE HANGING HEART T-LIGHT HOLDER",
        "JUMBO BAG SPACEBOY DESIGN",
        "ROUND CAKE TIN VINTAGE GREEN",
        "SET OF 3 CAKE TINS PANTRY DESIGN ",
        "PINK/GREEN FLOWER DESIGN BIG MUG",
        "BLUE",
    ]
    assert derive_categories(titles) == ["holder", "bag", "tin", "tin", "mug", "other"]


# --------------------------------------------------------------------------- bitext


@pytest.fixture(scope="module")
def tickets(tmp_path_factory):
    out = tmp_path_factory.mktemp("bitext")
    report = import_bitext(BITEXT, out, start="2024-02-01", days=7)
    return out, report


@needs_data
def test_bitext_all_rows_and_splits(tickets):
    out, report = tickets
    expected = {}
    for marker, split in bitext.SPLITS.items():
        expected[split] = len(pd.read_csv(BITEXT / bitext.FILE_PATTERN.format(marker), dtype=str))
    frame = read_landing(out, "support_tickets")
    assert_contract_columns(frame, "support_tickets")
    assert report["rows_read"] == sum(expected.values()) == len(frame) == report["rows_written"]["support_tickets"]
    assert report["rows_read_per_split"] == expected
    assert frame[C.TICKET_ID].is_unique
    parts = frame[C.TICKET_ID].str.extract(r"^bitext-(train|validation|test)-(\d{6})$")
    assert parts.notna().all().all()
    assert parts[0].value_counts().to_dict() == expected
    assert json.loads((out / "_import_report_bitext.json").read_text()) == report


@needs_data
def test_bitext_fields(tickets):
    out, report = tickets
    frame = read_landing(out, "support_tickets")
    assert (frame[C.TEXT].str.strip() != "").all()
    assert frame[C.INTENT].notna().all() and (frame[C.INTENT].str.strip() != "").all()
    assert set(frame[C.INTENT]) == set(RESOLUTIONS) and len(RESOLUTIONS) == 27
    assert frame[C.RESOLUTION].notna().all()
    assert not frame[C.RESOLUTION].str.contains(r"[{}]").any()
    assert (frame[C.CHANNEL] == bitext.CHANNEL_CHAT).all()
    with_order = frame[frame[C.ORDER_ID].notna()]
    assert len(with_order) == report["tickets_with_order_id"] > 0
    assert with_order.apply(lambda r: r[C.ORDER_ID] in r[C.TEXT] and r[C.ORDER_ID] in r[C.RESOLUTION], axis=1).all()
    assert set(with_order[C.INTENT]) <= {"cancel_order", "change_order", "track_order"}


@needs_data
def test_bitext_files_per_day(tickets, tmp_path):
    out, report = tickets
    days = [(dt.date(2024, 2, 1) + dt.timedelta(days=k)).isoformat() for k in range(7)]
    assert sorted(p.name for p in (out / "support_tickets").iterdir()) == [f"{d}.csv" for d in days]
    frame = read_landing(out, "support_tickets")
    assert (frame[C.CREATED_TS].str[:10] == frame["_day"]).all()
    per_day = frame["_day"].value_counts()
    assert per_day.max() - per_day.min() <= 1
    assert report["days_written"] == 7
    import_bitext(BITEXT, tmp_path, start="2024-02-01", days=7)
    assert file_bytes(tmp_path) == file_bytes(out)


def test_render_resolution():
    assert "order 123" in render_resolution("cancel_order", "order_id", "123")
    assert "your order" in render_resolution("cancel_order", "", "")
    assert "invoice #37777" in render_resolution("get_invoice", "invoice_id", "#37777")
    assert "delivery to Hungary;" in render_resolution("delivery_options", "delivery_country", "Hungary")
    assert "delivery;" in render_resolution("delivery_options", "", "")
    assert render_resolution("no_such_intent") is None
    for intent in RESOLUTIONS:
        assert "{" not in render_resolution(intent)


# --------------------------------------------------------------------------- pricerunner


@needs_data
def test_pricerunner_products(tmp_path):
    report = import_pricerunner(PRICERUNNER, tmp_path, start="2024-03-01")
    raw = pd.read_csv(PRICERUNNER, dtype=str)
    raw.columns = [c.strip() for c in raw.columns]
    frame = read_landing(tmp_path, "products")
    assert_contract_columns(frame, "products")
    assert len(frame) == len(raw) == report["rows_read"] == report["rows_written"]["products"]
    assert sorted(p.name for p in (tmp_path / "products").iterdir()) == ["2024-03-01.csv"]
    labels = set(raw["Category Label"].str.strip())
    assert len(labels) == 10 and set(frame[C.CATEGORY]) == labels
    assert report["categories"] == raw["Category Label"].str.strip().value_counts().sort_index().to_dict()
    assert frame[C.ITEM_ID].is_unique and frame[C.ITEM_ID].str.fullmatch(r"pr-\d+").all()
    assert frame[C.DESCRIPTION].isna().all() and frame[C.PRICE].isna().all()
    assert (frame[C.ON_PROMOTION] == "false").all()
    assert (frame[C.UPDATED_AT] == "2024-03-01T00:00:00Z").all()
    # No trace of the cluster label (the clustering target) in the written rows.
    assert not frame.isin(set(raw["Cluster Label"]) - set(raw["Product Title"])).any().any()
    assert (frame[C.BRAND].dropna() == frame.loc[frame[C.BRAND].notna(), C.TITLE].str.split().str[0]).all()
    assert json.loads((tmp_path / "_import_report_pricerunner.json").read_text()) == report


@needs_data
def test_pricerunner_spread_over_days(tmp_path):
    report = import_pricerunner(PRICERUNNER.parent, tmp_path, start="2024-03-01", days=3)
    frame = read_landing(tmp_path, "products")
    assert len(frame) == report["rows_written"]["products"]
    assert frame["_day"].value_counts().sort_index().index.tolist() == ["2024-03-01", "2024-03-02", "2024-03-03"]
    assert (frame[C.UPDATED_AT].str[:10] == frame["_day"]).all()


def test_brand_from_title():
    assert brand_from_title("bosch kgn39vl35g fridge freezer") == "bosch"
    assert brand_from_title("43in led t2 freeview tv") is None
    assert brand_from_title("   ") is None
