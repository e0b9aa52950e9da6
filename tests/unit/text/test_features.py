"""The text tables on hand-made bronze rows: snapshot bounds, dedupe, normalisation, splits, product versions."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from shoplake import columns as C
from shoplake.categorize.features import compute_product_text
from shoplake.categorize.schemas import PRODUCT_TEXT
from shoplake.ingest.bronze import BRONZE
from shoplake.ingest.landing import PRODUCTS, SUPPORT_TICKETS
from shoplake.lake.spec import TableSpec
from shoplake.support.features import compute_support_tickets, compute_support_training
from shoplake.support.schemas import SUPPORT_TICKETS as SILVER_TICKETS
from shoplake.support.schemas import SUPPORT_TRAINING
from shoplake.text.splits import SPLITS, TEST, TRAIN, VALIDATION

UTC = dt.timezone.utc
D = dt.date(2024, 3, 31)
MIDNIGHT = dt.datetime(2024, 3, 31, tzinfo=UTC)
US = dt.timedelta(microseconds=1)
INGESTED = dt.datetime(2024, 3, 30, 23, 0, tzinfo=UTC)


def at(text: str, hour: int = 12) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(hour), tzinfo=UTC)


def frame(spark, source: str, rows: list[dict]):
    """A bronze-like frame of ``rows`` (landing fields plus lineage) in the bronze spec's schema."""
    spec = BRONZE[source]
    lineage = {C.SOURCE_FILE: f"{source}.csv", C.ROW_NUMBER: 1, C.INGESTED_AT: INGESTED}
    full = [{**lineage, **row} for row in rows]
    return spark.createDataFrame([tuple(r.get(name) for name in spec.column_names) for r in full], spec.spark_schema())


def ticket(tid: str, ts: dt.datetime, text: str = "Where is my order?", intent: str | None = "track_order", **extra):
    row = {
        C.TICKET_ID: tid, C.USER_ID: "u1", C.ORDER_ID: "o1", C.CHANNEL: "chat", C.TEXT: text, C.INTENT: intent,
        C.RESOLUTION: None if intent is None else "Here is the tracking link.", C.CREATED_TS: ts,
        C.RUN_DATE: ts.date(),
    }  # fmt: skip
    return {**row, **extra}


def product(item: str, ts: dt.datetime, title: str, description: str | None = None, **extra) -> dict:
    row = {
        C.ITEM_ID: item, C.TITLE: title, C.DESCRIPTION: description, C.CATEGORY: "phones", C.BRAND: "Acme",
        C.PRICE: 9.5, C.ON_PROMOTION: False, C.UPDATED_AT: ts, C.RUN_DATE: ts.date(),
    }  # fmt: skip
    return {**row, **extra}


def check_schema(df, spec: TableSpec) -> None:
    assert df.columns == spec.column_names
    assert [f.dataType for f in df.schema.fields] == [f.dataType for f in spec.spark_schema().fields]


def tickets(spark, rows: list[dict], run_date: dt.date = D) -> dict[str, dict]:
    out = compute_support_tickets(frame(spark, SUPPORT_TICKETS.name, rows), run_date)
    check_schema(out, SILVER_TICKETS)
    return {r[C.TICKET_ID]: r.asDict() for r in out.collect()}


def products(spark, rows: list[dict]) -> dict[str, dict]:
    out = compute_product_text(frame(spark, PRODUCTS.name, rows), D)
    check_schema(out, PRODUCT_TEXT)
    return {r[C.ITEM_ID]: r.asDict() for r in out.collect()}


def test_a_reingested_ticket_counts_once_as_its_latest_copy(spark):
    later = {C.INGESTED_AT: INGESTED + dt.timedelta(hours=1), C.SOURCE_FILE: "support_tickets-fixed.csv"}
    rows = tickets(
        spark,
        [
            ticket("t1", at("2024-03-20"), text="first copy"),
            ticket("t1", at("2024-03-20"), text="second copy", **later),
            # The latest copy moved the ticket past D's midnight: it is not in D's snapshot at all.
            ticket("t2", at("2024-03-20"), text="kept copy"),
            ticket("t2", MIDNIGHT + dt.timedelta(hours=2), text="moved", **{**later, C.RUN_DATE: dt.date(2024, 3, 20)}),
        ],
    )
    assert set(rows) == {"t1"}
    assert rows["t1"][C.TEXT] == "second copy" and rows["t1"][C.RUN_DATE] == D


def test_only_tickets_created_before_midnight_and_landed_before_the_run_date(spark):
    rows = tickets(
        spark,
        [
            ticket("before", MIDNIGHT - US, **{C.RUN_DATE: D - dt.timedelta(days=1)}),
            ticket("at-midnight", MIDNIGHT, **{C.RUN_DATE: D - dt.timedelta(days=1)}),
            ticket("after", MIDNIGHT + dt.timedelta(hours=5)),
            # Created the day before, but landed on D: the nightly run for D had not seen it.
            ticket("late-landed", MIDNIGHT - dt.timedelta(hours=1), **{C.RUN_DATE: D}),
            ticket("old", at("2023-01-05")),
        ],
    )
    assert set(rows) == {"before", "old"}
    assert rows["before"][C.CREATED_TS].replace(tzinfo=UTC) == MIDNIGHT - US  # the session time zone is UTC


def test_text_is_whitespace_normalised_and_blank_messages_are_dropped(spark):
    rows = tickets(
        spark,
        [
            ticket("spaced", at("2024-03-10"), text="  Hi,\tmy\n\n order  \u00a0never\r\narrived.  "),
            ticket("blank", at("2024-03-10"), text=" \t\n "),
            ticket("nbsp-only", at("2024-03-10"), text="\u00a0\u2003"),
            ticket("blank-labels", at("2024-03-10"), intent="  ", **{C.CHANNEL: "", C.RESOLUTION: " "}),
            ticket("padded-intent", at("2024-03-10"), intent=" cancel_order "),
        ],
    )
    assert set(rows) == {"spaced", "blank-labels", "padded-intent"}
    assert rows["spaced"][C.TEXT] == "Hi, my order never arrived."
    assert rows["blank-labels"][C.INTENT] is None and rows["blank-labels"][C.RESOLUTION] is None
    assert rows["blank-labels"][C.CHANNEL] is None
    assert rows["padded-intent"][C.INTENT] == "cancel_order"
    assert rows["spaced"][C.USER_ID] == "u1" and rows["spaced"][C.ORDER_ID] == "o1"


def test_bitext_ids_keep_their_split(spark):
    ids = {
        "bitext-train-000001": TRAIN,
        "bitext-validation-000001": VALIDATION,
        "bitext-test-000042": TEST,
    }
    rows = tickets(spark, [ticket(tid, at("2024-03-01")) for tid in ids])
    assert {tid: row[C.SPLIT] for tid, row in rows.items()} == ids


def test_the_shops_own_split_wins(spark):
    # A landing row's split beats Bitext's id and the hash; an empty one leaves them to decide.
    given = [ticket("bitext-train-000007", at("2024-03-01"), split=TEST), ticket("t1", at("2024-03-01"), split=VALIDATION),
             ticket("bitext-test-000008", at("2024-03-01"), split=None)]  # fmt: skip
    rows = tickets(spark, given)
    assert {tid: row[C.SPLIT] for tid, row in rows.items()} == {"bitext-train-000007": TEST, "t1": VALIDATION, "bitext-test-000008": TEST}
    items = [product(f"item-{i}", at("2024-03-05"), f"Title {i}", split=TEST) for i in range(20)]
    assert {row[C.SPLIT] for row in products(spark, items).values()} == {TEST}


def test_hash_split_is_stable_and_about_80_10_10(spark):
    # Ids that look like Bitext's but are not take the hash split too.
    ids = [f"t{i:08d}" for i in range(1_997)] + ["bitext-dev-000001", "xbitext-test-000001", "bitext-test"]
    rows = [ticket(tid, at("2024-03-01") + dt.timedelta(seconds=i)) for i, tid in enumerate(ids)]
    first = {tid: row[C.SPLIT] for tid, row in tickets(spark, rows).items()}
    # Another run date, and the rows in another order and partitioning: the same splits.
    shuffled = frame(spark, SUPPORT_TICKETS.name, rows[::-1]).repartition(7)
    again = {r[C.TICKET_ID]: r[C.SPLIT] for r in compute_support_tickets(shuffled, D + dt.timedelta(days=9)).collect()}
    assert len(first) == len(ids) and again == first
    shares = Counter(first.values())
    assert set(shares) == set(SPLITS)
    assert shares[TRAIN] / len(ids) == pytest.approx(0.8, abs=0.03)
    assert shares[VALIDATION] / len(ids) == pytest.approx(0.1, abs=0.02)
    assert shares[TEST] / len(ids) == pytest.approx(0.1, abs=0.02)


def test_support_training_keeps_the_labelled_tickets(spark):
    silver = compute_support_tickets(
        frame(
            spark,
            SUPPORT_TICKETS.name,
            [
                ticket("labelled", at("2024-03-02")),
                ticket("unlabelled", at("2024-03-02"), intent=None),
                ticket("blank-intent", at("2024-03-02"), intent=" "),
            ],
        ),
        D,
    )
    out = compute_support_training(silver)
    check_schema(out, SUPPORT_TRAINING)
    rows = [r.asDict() for r in out.collect()]
    assert rows == [
        {
            C.TICKET_ID: "labelled", C.TEXT: "Where is my order?", C.INTENT: "track_order",
            C.RESOLUTION: "Here is the tracking link.", C.ORDER_ID: "o1", C.SPLIT: rows[0][C.SPLIT], C.RUN_DATE: D,
        }
    ]  # fmt: skip
    assert rows[0][C.SPLIT] in SPLITS


def test_product_text_takes_the_version_in_effect_at_the_run_date(spark):
    later = {C.INGESTED_AT: INGESTED + dt.timedelta(hours=1)}
    rows = products(
        spark,
        [
            product("i1", at("2024-03-01"), "Phone X", "The first phone."),
            product("i1", at("2024-03-20"), "Phone X2", "An older copy of the current version."),
            product("i1", at("2024-03-20"), "Phone X2", "The current version.", **later),
            # A newer version after D's midnight, and one before it that only landed on D.
            product("i1", MIDNIGHT + dt.timedelta(hours=1), "Phone X3", "Not yet."),
            product("i1", MIDNIGHT - dt.timedelta(hours=1), "Phone X2b", "Landed late.", **{C.RUN_DATE: D}),
            product("i2", MIDNIGHT + dt.timedelta(hours=1), "Only after midnight"),
        ],
    )
    assert set(rows) == {"i1"}
    assert rows["i1"][C.TITLE] == "Phone X2" and rows["i1"][C.DESCRIPTION] == "The current version."
    assert rows["i1"][C.TEXT] == "Phone X2. The current version."
    assert rows["i1"][C.RUN_DATE] == D and rows["i1"][C.SPLIT] in SPLITS


def test_product_text_composition_and_blank_categories(spark):
    ts = at("2024-03-05")
    rows = products(
        spark,
        [
            product("with", ts, "  Red \t kettle ", " 1.7 litres,\n steel. ", **{C.CATEGORY: " kitchen  appliances "}),
            product("none", ts, "Blue mug", None, **{C.CATEGORY: ""}),
            product("blank", ts, "Green cup", "   ", **{C.CATEGORY: "  ", C.BRAND: " "}),
            product("same", ts, "Lamp", "Lamp", **{C.CATEGORY: None}),
        ],
    )
    assert rows["with"][C.TEXT] == "Red kettle. 1.7 litres, steel."
    assert rows["with"][C.TITLE] == "Red kettle" and rows["with"][C.CATEGORY] == "kitchen appliances"
    assert rows["with"][C.BRAND] == "Acme"
    assert rows["none"][C.TEXT] == "Blue mug" and rows["none"][C.DESCRIPTION] is None
    assert rows["blank"][C.TEXT] == "Green cup" and rows["blank"][C.DESCRIPTION] is None
    assert rows["blank"][C.BRAND] is None
    assert rows["same"][C.TEXT] == "Lamp"
    assert [rows[i][C.CATEGORY] for i in ("none", "blank", "same")] == [None, None, None]


def test_product_split_is_stable_and_about_80_10_10(spark):
    items = [f"item-{i}" for i in range(2_000)]
    rows = [product(item, at("2024-03-05"), f"Title {item}") for item in items]
    first = {item: row[C.SPLIT] for item, row in products(spark, rows).items()}
    again = {
        r[C.ITEM_ID]: r[C.SPLIT]
        for r in compute_product_text(frame(spark, PRODUCTS.name, rows[::-1]).repartition(5), D + dt.timedelta(days=3))
        .select(C.ITEM_ID, C.SPLIT)
        .collect()
    }
    assert again == first
    shares = Counter(first.values())
    assert shares[TRAIN] / len(items) == pytest.approx(0.8, abs=0.03)
    assert shares[VALIDATION] / len(items) == pytest.approx(0.1, abs=0.02)
    assert shares[TEST] / len(items) == pytest.approx(0.1, abs=0.02)
