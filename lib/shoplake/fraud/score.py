"""Batch fraud scores: ``serving.fraud_scores`` for the payments of the day before the run date.

The registered fraud model is downloaded once on the driver. The rows of
``gold.txn_features`` for run date D whose payment was made on D - 1 (the landing day
the nightly run ingested) are cut into blocks; Ray Data tasks (:class:`BundleScorer`)
load the bundle and turn each block into score, decision and top reasons
(:func:`score_table`, which the real-time endpoint uses too). One Delta commit
replaces the run date's partition.

With ``fraud.feature_table`` the rows of D - 1 are the shop's table's (``alone``), or
the lake's joined with its features (``join``): :func:`scoring_rows`. The model reads
the features its bundle lists; a row source without one of them is an error naming it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoplake import columns as C
from shoplake.config import Config
from shoplake.fraud.schemas import DECISIONS, FRAUD_SCORES, TXN_FEATURES

log = logging.getLogger(__name__)

#: Payments per Ray Data block.
BLOCK_ROWS = 20_000
#: Reasons given per score.
TOP_REASONS = 3


def score_rows(bundle, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[list[tuple[str, float]]]]:
    """Scores, decisions and the top reasons of feature rows ``X`` (columns in the bundle's feature order)."""
    scores = bundle.score(X)
    return scores, bundle.decide(scores), bundle.reasons(X, k=TOP_REASONS)


def score_table(
    bundle, rows: pa.Table, model_version: str, run_date: dt.date, scored_at: dt.datetime, what: str = TXN_FEATURES.full_name
) -> pa.Table:
    """``serving.fraud_scores`` rows of ``gold.txn_features`` rows (or of rows with the same columns and the bundle's features).

    Raises:
        shoplake.fraud.models.base.FeatureMismatchError: ``rows`` lack a feature the bundle reads.
    """
    from shoplake.fraud.dataset import feature_matrix

    n = rows.num_rows
    scores, decisions, reasons = score_rows(bundle, feature_matrix(rows, bundle.feature_names, what))
    return pa.table(
        {
            C.PAYMENT_ID: rows[C.PAYMENT_ID],
            C.USER_ID: rows[C.USER_ID],
            C.PAYMENT_TS: rows[C.PAYMENT_TS],
            C.AMOUNT: rows[C.AMOUNT],
            C.SCORE: pa.array(scores, pa.float64()),
            C.DECISION: pa.array([str(d) for d in decisions], pa.string()),
            C.REASON_FEATURES: pa.array([[f for f, _ in r] for r in reasons], pa.list_(pa.string())),
            C.REASON_CONTRIBUTIONS: pa.array([[float(v) for _, v in r] for r in reasons], pa.list_(pa.float64())),
            C.MODEL_NAME: pa.array([bundle.kind] * n, pa.string()),
            C.MODEL_VERSION: pa.array([model_version] * n, pa.string()),
            C.RUN_DATE: pa.array([run_date] * n, pa.date32()),
            C.SCORED_AT: pa.array([scored_at] * n, pa.timestamp("us", tz="UTC")),
        },
        schema=FRAUD_SCORES.arrow_schema(),
    )


class BundleScorer:
    """Ray Data callable: ``gold.txn_features`` rows in, ``serving.fraud_scores`` rows out.

    Args:
        folder: Local bundle folder downloaded on the driver (a task on another node downloads the version itself).
        cfg: Configuration (registry, for that download).
        model_version: Registered version the rows are tagged with.
        run_date: Run date of the rows.
        scored_at: Timestamp of the whole run, UTC.
    """

    def __init__(self, folder: str, cfg: Config, model_version: str, run_date: dt.date, scored_at: dt.datetime):
        from shoplake.fraud.bundle import FraudBundle
        from shoplake.registry import bundle_folder_here

        folder = bundle_folder_here(cfg, folder, model_version, cfg.fraud.registered_model)
        self.bundle = FraudBundle.load(folder)
        self.model_version, self.run_date, self.scored_at = model_version, run_date, scored_at

    def __call__(self, batch: pa.Table) -> pa.Table:
        return score_table(self.bundle, batch, self.model_version, self.run_date, self.scored_at)


def _score_block(batch: pa.Table, **kwargs) -> pa.Table:
    return BundleScorer(**kwargs)(batch)


@dataclass
class FraudScoringResult:
    """What a fraud scoring run wrote."""

    version: int
    rows: int
    decisions: dict[str, int]
    model_name: str
    model_version: str
    run_date: dt.date
    scored_at: dt.datetime
    seconds: float


def payments_of_day(lake, run_date: dt.date) -> pa.Table:
    """The ``gold.txn_features`` rows of ``run_date`` for the payments made on the day before it."""
    import pyarrow.dataset as ds

    from shoplake.features.pit import run_midnight

    start = run_midnight(run_date - dt.timedelta(days=1))
    rows = lake.to_arrow(TXN_FEATURES, run_date=run_date, where=ds.field(C.PAYMENT_TS) >= pa.scalar(start, pa.timestamp("us", tz="UTC")))
    return rows.sort_by([(C.PAYMENT_TS, "ascending"), (C.PAYMENT_ID, "ascending")])


def scoring_rows(cfg: Config, lake, run_date: dt.date | str | None) -> tuple[pa.Table, dt.date, str]:
    """The rows to score for ``run_date``: the payments made on the day before it, with their features.

    Without ``fraud.feature_table`` they are ``gold.txn_features``'s (:func:`payments_of_day`);
    in ``alone`` mode the table's rows of that day (default run date: the day after its
    newest payment); in ``join`` mode the lake's joined with the table's features.

    Returns:
        ``(rows, run_date, where they come from)``.

    Raises:
        shoplake.fraud.dataset.MissingTxnFeaturesError: The lake's features are needed and missing.
        shoplake.fraud.feature_table.FeatureTableError: The table is wrong.
    """
    from shoplake.features.pit import run_midnight
    from shoplake.fraud.dataset import MissingTxnFeaturesError
    from shoplake.fraud.feature_table import ALONE, default_run_date, join_features, read_feature_table, rows_between

    ft = cfg.fraud.feature_table
    if run_date is not None and not isinstance(run_date, dt.date):
        run_date = dt.date.fromisoformat(str(run_date))
    if ft is not None and ft.mode == ALONE:
        table = read_feature_table(cfg)
        run_date = run_date or default_run_date(table)
        rows = rows_between(table, run_midnight(run_date - dt.timedelta(days=1)), run_midnight(run_date))
        return rows, run_date, f"fraud.feature_table {table.uri}"
    dates = lake.run_dates(TXN_FEATURES)
    if run_date is None:
        if not dates:
            raise MissingTxnFeaturesError(f"{TXN_FEATURES.full_name} does not exist or is empty in {lake.root}")
        run_date = max(dates)
    if run_date not in dates:
        raise MissingTxnFeaturesError(f"{TXN_FEATURES.full_name} has no run date {run_date} in {lake.root}")
    rows = payments_of_day(lake, run_date)
    what = f"{TXN_FEATURES.full_name}@{run_date}"
    if ft is None:
        return rows, run_date, what
    table = read_feature_table(cfg, reserved=rows.column_names)
    return join_features(rows, table, f"payments of {run_date - dt.timedelta(days=1)}"), run_date, f"{what} joined with {table.uri}"


def score_fraud(cfg: Config, lake, run_date: dt.date | str | None = None, *, version: str | int | None = None) -> FraudScoringResult:
    """Score the payments of the day before ``run_date`` into ``serving.fraud_scores``.

    Args:
        cfg: ``fraud.registered_model``, ``ray.cpus_per_data_task``.
        lake: Reads ``gold.txn_features``, writes ``serving.fraud_scores``.
        run_date: Default: the latest run date of ``gold.txn_features``.
        version: Registered version; None: the serving alias.

    Raises:
        NoServingModel: No fraud model registered (or ``version`` unknown).
        shoplake.fraud.dataset.MissingTxnFeaturesError: No features for the run date.
        shoplake.fraud.models.base.FeatureMismatchError: The rows lack a feature the model reads.
    """
    from shoplake.fraud.bundle import FraudBundle
    from shoplake.fraud.dataset import feature_matrix
    from shoplake.ray_runtime import init_ray
    from shoplake.registry import download_bundle

    start = time.perf_counter()
    folder, info = download_bundle(cfg, version, registered_model=cfg.fraud.registered_model)
    bundle = FraudBundle.load(folder)
    rows, run_date, what = scoring_rows(cfg, lake, run_date)
    feature_matrix(rows.slice(0, 0), bundle.feature_names, what)  # a missing feature fails here, on the driver, naming it
    scored_at = dt.datetime.now(dt.timezone.utc)
    log.info(
        "scoring %d payments of %s from %s with %s version %s (%s, %d features)",
        rows.num_rows,
        run_date - dt.timedelta(days=1),
        what,
        info.name,
        info.version,
        bundle.kind,
        len(bundle.feature_names),
    )
    ray = init_ray(cfg)
    if rows.num_rows:
        blocks = [rows.slice(i, BLOCK_ROWS) for i in range(0, rows.num_rows, BLOCK_ROWS)]
        scored = ray.data.from_arrow(blocks).map_batches(
            _score_block,
            fn_kwargs={"folder": str(folder), "cfg": cfg, "model_version": info.version, "run_date": run_date, "scored_at": scored_at},
            batch_format="pyarrow", batch_size=None, num_cpus=cfg.ray.cpus_per_data_task,
        ).materialize()  # fmt: skip
    else:  # a day without payments still replaces the run date's partition (with nothing)
        scored = ray.data.from_arrow(score_table(bundle, rows, info.version, run_date, scored_at))
    counts = dict.fromkeys(DECISIONS, 0)
    for block in scored.iter_batches(batch_format="pyarrow", batch_size=None):
        for value in pc.value_counts(block[C.DECISION]).to_pylist():
            counts[value["values"]] += value["counts"]
    written = lake.ray_write(scored, FRAUD_SCORES, mode="replace", run_dates=[run_date])
    seconds = time.perf_counter() - start
    log.info("wrote %s v%d: %d payments (%s) in %.1f s", written.table, written.version, written.rows, counts, seconds)
    return FraudScoringResult(
        version=written.version, rows=written.rows, decisions=counts, model_name=bundle.kind, model_version=info.version,
        run_date=run_date, scored_at=scored_at, seconds=seconds,
    )  # fmt: skip
