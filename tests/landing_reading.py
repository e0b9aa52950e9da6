"""Reading a synthetic shop's landing files back in tests: every field as text, and the rows that break the contract."""

from __future__ import annotations

import csv
import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from shoplake import columns as C
from shoplake.datagen.landing_writer import landing_path
from shoplake.datagen.shop.common import SOURCE_FORMATS, ShopParams
from shoplake.ingest import landing as L

NONNEGATIVE = {
    L.ORDERS.name: (C.UNIT_PRICE,),
    L.PRODUCTS.name: (C.PRICE,),
    L.CHARGEBACKS.name: (C.AMOUNT,),
    L.AD_EVENTS.name: (C.COST,),
    L.INVENTORY.name: (C.ON_HAND, C.ON_ORDER, C.LEAD_TIME_DAYS, C.UNIT_COST),
}
POSITIVE = {L.ORDERS.name: (C.QUANTITY,), L.PAYMENTS.name: (C.AMOUNT,)}
ONE_OF = {
    L.ORDERS.name: {C.STATUS: L.ORDER_STATUSES},
    L.EVENTS.name: {C.EVENT_TYPE: L.EVENT_TYPES},
    L.PAYMENTS.name: {C.PAYMENT_METHOD: L.PAYMENT_METHODS},
    L.AD_EVENTS.name: {C.EVENT_TYPE: L.AD_EVENT_TYPES},
}
NOT_BLANK = {L.PRODUCTS.name: (C.TITLE,), L.SUPPORT_TICKETS.name: (C.TEXT,)}
DAY = "_day"


def read_landing_file(path: Path, source: str) -> pd.DataFrame:
    """One landing file as strings (None for nulls), columns as in the file."""
    names = L.get_source(source).field_names
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh))
        table = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in header}, strings_can_be_null=False, quoted_strings_can_be_null=False
            ),
        )
        frame = table.to_pandas()
        # An unquoted empty field is how the writer spells null.
        return frame.where(frame != "", None)
    if path.suffix == ".jsonl":
        if path.stat().st_size == 0:
            return pd.DataFrame({n: pd.Series([], dtype=object) for n in names})
        schema = pa.schema([(n, pa.string()) for n in names])
        table = pajson.read_json(path, parse_options=pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error"))
        return table.to_pandas()
    table = pq.read_table(path)
    return pa.table([c.cast(pa.string()) for c in table.columns], names=table.column_names).to_pandas()


def read_source(root: Path, source: str, params: ShopParams) -> pd.DataFrame:
    frames = []
    for d in range(params.days):
        day = params.start + dt.timedelta(days=d)
        frame = read_landing_file(landing_path(root, source, day, SOURCE_FORMATS[source]), source)
        frames.append(frame.assign(**{DAY: day.isoformat()}))
    return pd.concat(frames, ignore_index=True)


def violations(source: str, frame: pd.DataFrame) -> pd.Series:
    """Rows that break the landing contract (required fields and checks)."""
    contract = L.get_source(source)
    bad = pd.Series(False, index=frame.index)
    for name in contract.required_fields:
        bad |= frame[name].isna() | (frame[name].fillna("").str.strip() == "")
    for name in NONNEGATIVE.get(source, ()):
        bad |= pd.to_numeric(frame[name]) < 0
    for name in POSITIVE.get(source, ()):
        bad |= pd.to_numeric(frame[name]) <= 0
    if source == L.ORDERS.name:
        bad |= pd.to_numeric(frame[C.LINE_NUMBER]) < 1
    for name, allowed in ONE_OF.get(source, {}).items():
        bad |= frame[name].notna() & ~frame[name].isin(allowed)
    for name in NOT_BLANK.get(source, ()):
        bad |= frame[name].fillna("").str.strip() == ""
    if source == L.EVENTS.name:
        bad |= (frame[C.EVENT_TYPE] != "search") & frame[C.ITEM_ID].isna()
    return bad


def day_of(ts: pd.Series) -> pd.Series:
    return ts.str.slice(0, 10)


def seconds(ts: pd.Series) -> np.ndarray:
    return pd.to_datetime(ts, utc=True).astype("int64").to_numpy() // 10**9


def bag_of_words_accuracy(texts: list[str], labels: list[str]) -> float:
    """Nearest-centroid classifier on word counts: train on the first half, score the second."""
    tokens = [re.findall(r"[a-z]+", t.lower()) for t in texts]
    vocab = {w: k for k, w in enumerate(sorted({w for ts in tokens for w in ts}))}
    x = np.zeros((len(texts), len(vocab)))
    for row, ts in enumerate(tokens):
        for w in ts:
            x[row, vocab[w]] += 1
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)
    half = len(texts) // 2
    classes = sorted(set(labels[:half]))
    y = np.array(labels)
    centroids = np.stack([x[:half][y[:half] == c].mean(axis=0) for c in classes])
    predicted = np.array(classes)[np.argmax(x[half:] @ centroids.T, axis=1)]
    return float((predicted == y[half:]).mean())
