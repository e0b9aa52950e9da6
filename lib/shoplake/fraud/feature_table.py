"""A shop's own labelled feature table for fraud (``fraud.feature_table``).

A shop may hold a table of payments with its own numeric features (a risk vendor's
scores, signals of its own systems) and, for ``mode: alone``, their labels. The fraud
run reads it with :func:`read_feature_table` into the columns the run works on:

* ``alone``: the table is the data. Its labelled rows (label 0 or 1) made before the
  run date's midnight are split by time, trained on, evaluated and registered like the
  lake's payments; batch scoring scores its rows of the day before the run date.
* ``join``: the table adds its features to the lake's payments (``gold.txn_features``,
  with the labels and amounts the lake gives) by payment id. Payments without a row in
  the table are left out of training and scoring, with a warning that counts them.

Point in time: the lake cannot know when the shop learnt a value of its table. The shop
vouches that each feature was known when the payment was made; a value learnt later
(after a chargeback, say) makes every figure of the run look better than it will be.

A null feature value reads as 0, as the lake's own payment fields do.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoplake import columns as C
from shoplake.config import Config, FraudFeatureTableConfig, resolve_path
from shoplake.errors import InputError

log = logging.getLogger(__name__)

ALONE, JOIN = "alone", "join"
#: Where a fraud model's rows came from (``feature_source`` in the bundle's metadata).
SOURCE_LAKE, SOURCE_TABLE, SOURCE_JOINED = "lake", "feature_table", "lake+feature_table"
#: The config key of the table's settings, for messages.
KEY = "fraud.feature_table"


class FeatureTableError(InputError):
    """The shop's feature table is missing, unreadable, or lacks what the configuration names."""


@dataclass
class FeatureTable:
    """The shop's table as the fraud run reads it.

    Attributes:
        rows: ``payment_id`` (string) and ``payment_ts`` (timestamp, UTC) always; in
            ``alone`` mode ``user_id``, ``amount`` (double) and ``label`` (int, null
            when unlabelled) too; then one float64 column per feature (null read as 0).
        feature_names: The feature columns, in order.
        uri: Where it was read from.
        version: Its Delta version (None for Parquet).
        mode: ``alone`` or ``join``.
    """

    rows: pa.Table
    feature_names: tuple[str, ...]
    uri: str
    version: int | None
    mode: str

    @property
    def lineage(self) -> dict[str, int]:
        """``{fraud.feature_table: version}`` for the bundle's table versions (-1 for a Parquet table)."""
        return {KEY: -1 if self.version is None else self.version}

    def describe(self) -> dict[str, object]:
        """What a bundle records of the table: where it is, its version, the mode and the features."""
        return {"uri": self.uri, "version": self.version, "mode": self.mode, "features": list(self.feature_names)}


def table_uri(cfg: Config) -> str:
    """The table's location, a relative path resolved against the project root."""
    return resolve_path(cfg.fraud.feature_table.uri, Path(cfg.project_root))


def _read(cfg: Config, uri: str, ft: FraudFeatureTableConfig) -> tuple[pa.Table, int | None]:
    if ft.format == "delta":
        from deltalake import DeltaTable

        options = cfg.lake.storage_options or None
        try:
            if not DeltaTable.is_deltatable(uri, storage_options=options):
                raise FeatureTableError(f"{KEY}.uri: no Delta table at {uri}")
            table = DeltaTable(uri, storage_options=options)
            dataset = table.to_pyarrow_dataset()
            rows, version = dataset.to_table(), table.version()
            del dataset, table  # released before the process may exit (stack notes)
        except FeatureTableError:
            raise
        except Exception as exc:  # noqa: BLE001 - delta-rs raises several types for a broken table
            raise FeatureTableError(f"{KEY}.uri: cannot read the Delta table at {uri} ({exc})") from exc
        return rows, version
    import pyarrow.dataset as ds

    from shoplake.lake.files import filesystem

    fs, path = filesystem(uri)
    try:
        return ds.dataset(path, filesystem=fs, format="parquet").to_table(), None
    except (OSError, pa.ArrowInvalid) as exc:
        raise FeatureTableError(f"{KEY}.uri: cannot read Parquet at {uri} ({exc})") from exc


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t)


def _numbers(column: pa.ChunkedArray) -> pa.Array:
    values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    return pa.array(np.nan_to_num(values.astype(np.float64), nan=0.0), pa.float64())


def _timestamps(column: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    t = column.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        try:
            column = pc.cast(column, pa.timestamp("us", tz="UTC"))
        except pa.ArrowInvalid as exc:
            raise FeatureTableError(f"{KEY}.timestamp: column {name} does not parse as timestamps ({exc})") from exc
    elif pa.types.is_date(t):
        column = pc.cast(pc.cast(column, pa.timestamp("us")), pa.timestamp("us", tz="UTC"))
    elif not pa.types.is_timestamp(t):
        raise FeatureTableError(f"{KEY}.timestamp: column {name} is {t}, not a timestamp")
    elif t.tz is None:  # a timestamp without a zone is read as UTC, like the landing files'
        column = pc.assume_timezone(column, "UTC")
    return pc.cast(column, pa.timestamp("us", tz="UTC"))


def read_feature_table(cfg: Config, reserved: Sequence[str] = ()) -> FeatureTable:
    """Read and check the table of ``fraud.feature_table``.

    Args:
        cfg: The configuration; ``cfg.fraud.feature_table`` must be set.
        reserved: Names a feature must not take (the lake's columns in ``join`` mode).

    Raises:
        FeatureTableError: The table cannot be read, a named column is missing or has
            the wrong type, a payment id repeats or is empty, a label is not 0, 1 or
            null, or a feature takes a reserved name (the message names the key).
    """
    ft = cfg.fraud.feature_table
    if ft is None:
        raise FeatureTableError(f"{KEY} is not configured")
    uri = table_uri(cfg)
    raw, version = _read(cfg, uri, ft)
    names = raw.column_names
    keys = {"payment_id": ft.payment_id, "timestamp": ft.timestamp}
    if ft.mode == ALONE:
        keys.update(label=ft.label, amount=ft.amount, user_id=ft.user_id)
    for key, column in keys.items():
        if column not in names:
            raise FeatureTableError(f"{KEY}.{key}: {uri} has no column {column!r} (it has: {', '.join(names)})")
    # Never features: the id, the time, the label (it would leak), the customer; in join mode the amount is the lake's.
    excluded = {ft.payment_id, ft.timestamp, ft.label, ft.user_id} | ({ft.amount} if ft.mode == JOIN else set())
    if ft.features:
        features = list(ft.features)
        for name in features:
            if name not in names:
                raise FeatureTableError(f"{KEY}.features: {uri} has no column {name!r} (it has: {', '.join(names)})")
            if not _is_number(raw.schema.field(name).type):
                raise FeatureTableError(f"{KEY}.features: column {name!r} of {uri} is {raw.schema.field(name).type}, not a number")
    else:
        features = [n for n in names if n not in excluded and n not in reserved and _is_number(raw.schema.field(n).type)]
    clash = [n for n in features if n in reserved or n in excluded]
    if clash:
        raise FeatureTableError(
            f"{KEY}.features: {', '.join(clash)} would take the name of the id, time, label or customer, or of a column "
            "the lake's rows already have; rename them"
        )
    if not features:
        raise FeatureTableError(f"{KEY}.features: {uri} has no numeric column to read as a feature")

    ids = pc.cast(raw[ft.payment_id], pa.string())
    if ids.null_count or pc.any(pc.equal(pc.utf8_length(ids), 0)).as_py():
        raise FeatureTableError(f"{KEY}.payment_id: column {ft.payment_id!r} of {uri} has empty payment ids")
    counts = pc.value_counts(ids)
    repeated = pc.filter(counts, pc.greater(counts.field("counts"), 1))
    if len(repeated):
        raise FeatureTableError(f"{KEY}.payment_id: payment id {repeated[0]['values'].as_py()!r} repeats in {uri}")
    out = {C.PAYMENT_ID: ids, C.PAYMENT_TS: _timestamps(raw[ft.timestamp], ft.timestamp)}
    if pc.count(out[C.PAYMENT_TS], mode="only_null").as_py():
        raise FeatureTableError(f"{KEY}.timestamp: column {ft.timestamp!r} of {uri} has empty times")
    if ft.mode == ALONE:
        label = raw[ft.label]
        if not _is_number(label.type):
            raise FeatureTableError(f"{KEY}.label: column {ft.label!r} of {uri} is {label.type}, not 0 or 1")
        label = pc.cast(label, pa.int32())
        if not pc.all(pc.is_in(label.drop_null(), pa.array([0, 1], pa.int32()))).as_py():
            raise FeatureTableError(f"{KEY}.label: column {ft.label!r} of {uri} holds values other than 0, 1 and null")
        amount = raw[ft.amount]
        if not _is_number(amount.type) or amount.null_count:
            raise FeatureTableError(f"{KEY}.amount: column {ft.amount!r} of {uri} must be a number in every row")
        if raw[ft.user_id].null_count:
            raise FeatureTableError(f"{KEY}.user_id: column {ft.user_id!r} of {uri} has empty customers")
        out.update({C.USER_ID: pc.cast(raw[ft.user_id], pa.string()), C.AMOUNT: pc.cast(amount, pa.float64()), C.LABEL: label})
    for name in features:
        out[name] = _numbers(raw[name])
    rows = pa.table(out).sort_by([(C.PAYMENT_TS, "ascending"), (C.PAYMENT_ID, "ascending")])
    log.info("%s: %s (v%s), %d rows, %d features, mode %s", KEY, uri, version, rows.num_rows, len(features), ft.mode)
    return FeatureTable(rows, tuple(features), uri, version, ft.mode)


def default_run_date(table: FeatureTable) -> dt.date:
    """The day after the table's newest payment: the run date whose history is the whole table."""
    newest = pc.max(table.rows[C.PAYMENT_TS]).as_py()
    return newest.date() + dt.timedelta(days=1)


def rows_between(table: FeatureTable, start: dt.datetime | None, end: dt.datetime) -> pa.Table:
    """The table's rows with ``start <= payment_ts < end`` (no lower bound for ``start`` None)."""
    ts = table.rows[C.PAYMENT_TS]
    keep = pc.less(ts, pa.scalar(end, pa.timestamp("us", tz="UTC")))
    if start is not None:
        keep = pc.and_(keep, pc.greater_equal(ts, pa.scalar(start, pa.timestamp("us", tz="UTC"))))
    return table.rows.filter(keep)


def join_features(rows: pa.Table, table: FeatureTable, what: str) -> pa.Table:
    """``rows`` (of ``gold.txn_features``) with the table's features, by payment id; rows without a match are left out.

    Args:
        rows: The lake's rows.
        table: The shop's table (``join`` mode).
        what: What the rows are, for the warning on those left out.
    """
    features = table.rows.select([C.PAYMENT_ID, *table.feature_names])
    joined = rows.join(features, keys=C.PAYMENT_ID, join_type="inner")
    missing = rows.num_rows - joined.num_rows
    if missing:
        log.warning("%s: %d of %d %s have no row in %s (%s) and are left out", KEY, missing, rows.num_rows, what, table.uri, KEY)
    return joined.sort_by([(C.PAYMENT_TS, "ascending"), (C.PAYMENT_ID, "ascending")])
