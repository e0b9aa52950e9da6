"""Batch product categories: ``serving.product_categories`` for a run date of ``gold.product_text``.

The registered categorizer (``categorization.registered_model``, the version the
serving alias names unless one is given) is downloaded once, on the driver. Every
product of the run date's ``gold.product_text`` partition gets the most probable
category for its ``text`` and the runner-up; a product whose given category is set,
differs from the prediction, and is contradicted with at least the bundle's threshold
of confidence is flagged (``disagrees``). A catalogue is thousands of rows, so the
texts are classified here in batches (:data:`BATCH_ROWS`), not in Ray tasks. One
Delta commit replaces the run date's partition: a re-run replaces, never adds.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from shoplake import columns as C
from shoplake.categorize.schemas import PRODUCT_CATEGORIES, PRODUCT_TEXT
from shoplake.config import Config

log = logging.getLogger(__name__)

#: Product texts classified per call of the model.
BATCH_ROWS = 512


@dataclass
class CategoryScoringResult:
    """What a categorization run wrote.

    Attributes:
        version: Delta version of ``serving.product_categories`` after the commit.
        rows: Products written (one per product of the run date).
        flagged: Products whose given category the model disagrees with.
        model_name: Model family of the registered version.
        model_version: Registered version that predicted.
        run_date: Run date categorized.
        scored_at: Timestamp of the run, UTC.
        seconds: Wall time of the run.
    """

    version: int
    rows: int
    flagged: int
    model_name: str
    model_version: str
    run_date: dt.date
    scored_at: dt.datetime
    seconds: float


def categorize_table(bundle, rows: pa.Table, model_version: str, run_date: dt.date, scored_at: dt.datetime) -> pa.Table:
    """``serving.product_categories`` rows of ``gold.product_text`` rows.

    Args:
        bundle: A categorization :class:`~shoplake.text.bundle.TextBundle`.
        rows: ``gold.product_text`` rows (``item_id``, ``title``, ``category``, ``text``).
        model_version: Registered version the rows are tagged with.
        run_date: Run date of the rows.
        scored_at: Timestamp of the run, UTC.
    """
    n = rows.num_rows
    texts = rows[C.TEXT].to_pylist()
    predicted: list[str] = []
    confidence: list[float] = []
    second: list[str | None] = []
    second_confidence: list[float | None] = []
    for start in range(0, n, BATCH_ROWS):
        prediction = bundle.predict(texts[start : start + BATCH_ROWS])
        for row in range(len(prediction.labels)):
            top = prediction.top(row, 2)
            predicted.append(top[0][0])
            confidence.append(top[0][1])
            second.append(top[1][0] if len(top) > 1 else None)
            second_confidence.append(top[1][1] if len(top) > 1 else None)
        log.info("categorized %d of %d products", min(start + BATCH_ROWS, n), n)
    given = rows[C.CATEGORY].to_pylist()
    disagrees = [g is not None and g != p and c >= bundle.threshold for g, p, c in zip(given, predicted, confidence)]
    return pa.table(
        {
            C.ITEM_ID: rows[C.ITEM_ID],
            C.TITLE: rows[C.TITLE],
            C.GIVEN_CATEGORY: pa.array(given, pa.string()),
            C.PREDICTED_CATEGORY: pa.array(predicted, pa.string()),
            C.CONFIDENCE: pa.array(np.asarray(confidence, dtype=np.float64), pa.float64()),
            C.SECOND_CATEGORY: pa.array(second, pa.string()),
            C.SECOND_CONFIDENCE: pa.array(second_confidence, pa.float64()),
            C.DISAGREES: pa.array(disagrees, pa.bool_()),
            C.MODEL_NAME: pa.array([bundle.kind] * n, pa.string()),
            C.MODEL_VERSION: pa.array([model_version] * n, pa.string()),
            C.RUN_DATE: pa.array([run_date] * n, pa.date32()),
            C.SCORED_AT: pa.array([scored_at] * n, pa.timestamp("us", tz="UTC")),
        },
        schema=PRODUCT_CATEGORIES.arrow_schema(),
    )


def score_categories(
    cfg: Config, lake, run_date: dt.date | str | None = None, *, version: str | int | None = None
) -> CategoryScoringResult:
    """Categorize every product of a run date into ``serving.product_categories``.

    Args:
        cfg: ``categorization.registered_model``, the registry, Ray (for the write).
        lake: Reads ``gold.product_text``, writes ``serving.product_categories``.
        run_date: Default: the latest run date of ``gold.product_text``.
        version: Registered version; None: the serving alias.

    Returns:
        What was written.

    Raises:
        NoServingModel: No categorizer registered (or ``version`` unknown).
        shoplake.text.run.MissingTextTableError: ``gold.product_text`` is missing or has
            no such run date (a :class:`LookupError` naming the table).
        ValueError: The registered version is not a categorization model.
    """
    from shoplake.ray_runtime import init_ray
    from shoplake.registry import download_bundle
    from shoplake.text.bundle import CATEGORIZATION, TextBundle
    from shoplake.text.run import load_partition

    start = time.perf_counter()
    if run_date is not None and not isinstance(run_date, dt.date):
        run_date = dt.date.fromisoformat(str(run_date))
    rows, run_date, table_version = load_partition(lake, PRODUCT_TEXT, run_date)
    folder, info = download_bundle(cfg, version, registered_model=cfg.categorization.registered_model)
    bundle = TextBundle.load(folder, CATEGORIZATION)
    scored_at = dt.datetime.now(dt.timezone.utc)
    log.info(
        "categorizing %d products of %s (%s v%d) with %s version %s (%s, disagreement threshold %.3f)",
        rows.num_rows, run_date, PRODUCT_TEXT.full_name, table_version, info.name, info.version, bundle.kind, bundle.threshold,
    )  # fmt: skip
    table = categorize_table(bundle, rows, info.version, run_date, scored_at)
    flagged = int(sum(table[C.DISAGREES].to_pylist()))
    ray = init_ray(cfg)
    written = lake.ray_write(ray.data.from_arrow(table), PRODUCT_CATEGORIES, mode="replace", run_dates=[run_date])
    seconds = time.perf_counter() - start
    log.info("wrote %s v%d: %d products, %d flagged, in %.1f s", written.table, written.version, written.rows, flagged, seconds)
    return CategoryScoringResult(
        version=written.version, rows=written.rows, flagged=flagged, model_name=bundle.kind, model_version=info.version,
        run_date=run_date, scored_at=scored_at, seconds=seconds,
    )  # fmt: skip
