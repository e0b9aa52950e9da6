"""The shop's own labelled feature table: what is read as features, and errors that name the key."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shoplake import columns as C
from shoplake.config import load_config
from shoplake.fraud.feature_table import (
    FeatureTableError,
    default_run_date,
    join_features,
    read_feature_table,
    rows_between,
)

UTC = dt.timezone.utc


def own(**columns) -> pa.Table:
    base = {
        "payment_id": ["a", "b", "c"], "payment_ts": pa.array([dt.datetime(2024, 3, d, 9, tzinfo=UTC) for d in (1, 2, 3)]),
        "label": pa.array([0, 1, None], pa.int64()), "amount": [10.0, 20.0, 5.0], "user_id": ["u1", "u2", "u1"],
        "score": pa.array([0.1, None, 0.7]), "hits": pa.array([1, 2, 3], pa.int32()), "flag": [True, False, True], "note": ["x", "y", "z"],
    }  # fmt: skip
    base.update(columns)
    return pa.table(base)


def config(tmp_path, table: pa.Table, settings: str = "", fmt: str = "parquet"):
    path = tmp_path / "own"
    if fmt == "parquet":
        path = tmp_path / "own.parquet"
        pq.write_table(table, path)
    else:
        from deltalake import write_deltalake

        write_deltalake(str(path), table)
    return load_config("local", [f"fraud.feature_table={{uri: {path}, format: {fmt}{', ' + settings if settings else ''}}}"])


@pytest.mark.parametrize("fmt", ["parquet", "delta"])
def test_alone_reads_the_numeric_columns_as_features_with_the_label_amount_and_customer(tmp_path, fmt):
    table = read_feature_table(config(tmp_path, own(), fmt=fmt))
    # The label never is a feature; the amount is one; a null value reads as 0; text is left out.
    assert table.feature_names == ("amount", "score", "hits", "flag")
    assert table.rows[C.LABEL].to_pylist() == [0, 1, None] and table.rows["score"].to_pylist() == [0.1, 0.0, 0.7]
    assert table.rows["flag"].to_pylist() == [1.0, 0.0, 1.0] and table.rows[C.USER_ID].to_pylist() == ["u1", "u2", "u1"]
    assert table.version == (0 if fmt == "delta" else None) and table.mode == "alone"
    assert default_run_date(table) == dt.date(2024, 3, 4)
    day = rows_between(table, dt.datetime(2024, 3, 2, tzinfo=UTC), dt.datetime(2024, 3, 3, tzinfo=UTC))
    assert day[C.PAYMENT_ID].to_pylist() == ["b"]


def test_named_columns_and_a_naive_or_text_time_are_read(tmp_path):
    table = own(at=["2024-03-01T09:00:00Z", "2024-03-02T09:00:00Z", "2024-03-03T09:00:00Z"], payment_ts=pa.array([1, 2, 3]))
    read = read_feature_table(config(tmp_path, table, "timestamp: at, features: [hits]"))
    assert read.feature_names == ("hits",)
    assert read.rows[C.PAYMENT_TS][0].as_py() == dt.datetime(2024, 3, 1, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("table", "settings", "words"),
    [
        (own(), "label: fraud", ["fraud.feature_table.label", "no column 'fraud'"]),
        (own(), "features: [note]", ["fraud.feature_table.features", "'note'", "not a number"]),
        (own(), "features: [label]", ["fraud.feature_table.features", "label"]),
        (own(label=pa.array([0, 2, 1])), "", ["fraud.feature_table.label", "other than 0, 1"]),
        (own(payment_id=["a", "a", "c"]), "", ["fraud.feature_table.payment_id", "'a' repeats"]),
        (own(amount=[1.0, None, 2.0]), "", ["fraud.feature_table.amount"]),
        (own(user_id=["u1", None, "u2"]), "", ["fraud.feature_table.user_id", "empty customers"]),
        (own(payment_ts=["monday", "b", "c"]), "", ["fraud.feature_table.timestamp", "does not parse"]),
    ],
)
def test_a_table_that_does_not_match_the_settings_names_the_key(tmp_path, table, settings, words):
    with pytest.raises(FeatureTableError) as err:
        read_feature_table(config(tmp_path, table, settings))
    for word in words:
        assert word in str(err.value)


def test_a_missing_table_names_the_key(tmp_path):
    cfg = load_config("local", [f"fraud.feature_table={{uri: {tmp_path}/none}}"])
    with pytest.raises(FeatureTableError, match="fraud.feature_table.uri: no Delta table"):
        read_feature_table(cfg)


def test_join_adds_the_features_by_payment_id_and_leaves_out_payments_without_a_row(tmp_path, caplog):
    cfg = config(tmp_path, own(), "mode: join")
    table = read_feature_table(cfg, reserved=["amount", "user_count_1h"])
    # In join mode the lake gives label, amount and customer: only the table's own numbers are features.
    assert table.feature_names == ("score", "hits", "flag") and C.LABEL not in table.rows.column_names
    lake_rows = pa.table({C.PAYMENT_ID: ["c", "zz", "a"], C.PAYMENT_TS: pa.array([dt.datetime(2024, 3, d, tzinfo=UTC) for d in (3, 4, 1)]),
                          C.LABEL: [1, 0, 0]})  # fmt: skip
    with caplog.at_level("WARNING"):
        joined = join_features(lake_rows, table, "matured payments")
    assert joined[C.PAYMENT_ID].to_pylist() == ["a", "c"] and joined["score"].to_pylist() == [0.1, 0.7]
    assert "1 of 3 matured payments have no row" in caplog.text
    with pytest.raises(FeatureTableError, match="fraud.feature_table.features: amount"):
        read_feature_table(config(tmp_path, own(), "mode: join, features: [amount]"), reserved=["amount"])
