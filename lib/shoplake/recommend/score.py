"""Batch recommendations: the serving model's top-k for every user, into ``serving.recommendations``.

The registered bundle is downloaded once on the driver; Ray Data actors
(:class:`BundleRecommender`) each load it once from that folder and answer batches of
user ids with :meth:`RecommenderBundle.recommend`, the same call the ``/recommend``
endpoint makes, so batch and online answers agree. The rows are written to the lake
in one Delta commit that replaces the run date's partition.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from shoplake import columns as C
from shoplake.config import Config
from shoplake.recommend.schemas import RECOMMENDATIONS

log = logging.getLogger(__name__)

#: Users per Ray Data batch (and per block of the input).
BATCH_USERS = 256


@dataclass
class ScoringResult:
    """What a scoring run wrote."""

    table: str
    table_version: int
    rows: int
    users: int
    model_name: str
    model_version: str
    run_date: dt.date
    scored_at: dt.datetime
    seconds: float


class BundleRecommender:
    """Ray Data callable: user ids in, ranked recommendation rows out.

    The bundle is loaded once per actor from ``folder``. An actor on a node where that
    folder does not exist (a multi-node cluster) downloads the same registered
    version itself.

    Args:
        folder: Local bundle folder downloaded on the driver.
        cfg: Configuration (registry, for the download fallback).
        model_version: Registered version the rows are tagged with.
        k: Recommendations per user.
        exclude_seen: Leave out what each user already had.
        run_date: Run date of the rows.
        scored_at: Timestamp of the whole run, UTC.
    """

    def __init__(self, folder: str, cfg: Config, model_version: str, k: int, exclude_seen: bool, run_date: dt.date, scored_at: dt.datetime):
        from shoplake.recommend.bundle import RecommenderBundle
        from shoplake.registry import bundle_folder_here

        folder = bundle_folder_here(cfg, folder, model_version)
        self.bundle = RecommenderBundle.load(folder)
        self.model_version = model_version
        self.k = k
        self.exclude_seen = exclude_seen
        self.run_date = run_date
        self.scored_at = scored_at
        self.schema = RECOMMENDATIONS.arrow_schema()

    def __call__(self, batch: pa.Table) -> pa.Table:
        user_ids = batch.column(C.USER_ID).to_pylist()
        cols: dict[str, list] = {C.USER_ID: [], C.RANK: [], C.ITEM_ID: [], C.SCORE: [], C.RECOMMENDATION_REASON: []}
        for user, recs in zip(user_ids, self.bundle.recommend(user_ids, self.k, exclude_seen=self.exclude_seen)):
            for rank, rec in enumerate(recs, start=1):
                cols[C.USER_ID].append(user)
                cols[C.RANK].append(rank)
                cols[C.ITEM_ID].append(rec.item_id)
                cols[C.SCORE].append(rec.score)
                cols[C.RECOMMENDATION_REASON].append(rec.reason)
        n = len(cols[C.USER_ID])
        cols[C.MODEL_NAME] = [self.bundle.kind] * n
        cols[C.MODEL_VERSION] = [self.model_version] * n
        cols[C.RUN_DATE] = [self.run_date] * n
        cols[C.SCORED_AT] = [self.scored_at] * n
        return pa.Table.from_pydict(cols, schema=self.schema)


def _as_date(value: dt.date | str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def default_actors(cfg: Config, ray_module) -> int:
    """Scoring actors: as many as fit in half of the cluster's CPUs (the writer tasks get the rest), at least 1."""
    cpus = float(ray_module.cluster_resources().get("CPU", 1.0))
    return max(1, int(cpus / 2 / cfg.ray.cpus_per_data_task))


def score_recommendations(
    cfg: Config,
    lake,
    run_date: dt.date | str | None,
    *,
    version: str | int | None = None,
    users: Sequence[str] | None = None,
    actors: int | None = None,
) -> ScoringResult:
    """Write the serving model's top-k of every user into ``serving.recommendations``.

    Args:
        cfg: Configuration: ``recommender.k`` and ``exclude_seen``, the registry, and
            ``ray.cpus_per_data_task`` per actor.
        lake: The :class:`~shoplake.lake.Lake` to write to.
        run_date: Run date of the rows (its partition is replaced); None: the
            bundle's own ``run_date`` metadata.
        version: Registered version to score with; None: the serving alias.
        users: Users to score (unknown ones get the popular items); None: every
            user the bundle knows.
        actors: Most Ray Data actors scoring at once (default: :func:`default_actors`).

    Returns:
        What was written.

    Raises:
        NoServingModel: Nothing registered (or ``version`` unknown).
        ValueError: No run date given and the bundle records none.
    """
    from shoplake.ray_runtime import init_ray
    from shoplake.recommend.bundle import RecommenderBundle
    from shoplake.registry import download_bundle

    start = time.perf_counter()
    ray = init_ray(cfg)
    folder, info = download_bundle(cfg, version)
    bundle = RecommenderBundle.load(folder)
    if run_date is None:
        if not bundle.metadata.get("run_date"):
            raise ValueError(f"model version {info.version} records no run_date: give the run date to score for")
        run_date = bundle.metadata["run_date"]
    run_date = _as_date(run_date)
    user_ids = list(dict.fromkeys(users)) if users is not None else list(bundle.user_ids.ids)
    if not user_ids:
        raise ValueError("no users to score")
    kind = bundle.kind
    del bundle  # the actors load their own copies
    scored_at = dt.datetime.now(dt.timezone.utc)
    k = cfg.recommender.k
    blocks = [pa.table({C.USER_ID: pa.array(user_ids[i : i + BATCH_USERS], pa.string())}) for i in range(0, len(user_ids), BATCH_USERS)]
    actors = min(actors or default_actors(cfg, ray), len(blocks))
    log.info(
        "scoring %d users with %s version %s (%s) for run date %s: k=%d, exclude_seen=%s, %d actors x %s CPU",
        len(user_ids), info.name, info.version, kind, run_date, k, cfg.recommender.exclude_seen, actors, cfg.ray.cpus_per_data_task,
    )  # fmt: skip
    ds = ray.data.from_arrow(blocks).map_batches(
        BundleRecommender,
        fn_constructor_kwargs={
            "folder": str(folder), "cfg": cfg, "model_version": info.version, "k": k,
            "exclude_seen": cfg.recommender.exclude_seen, "run_date": run_date, "scored_at": scored_at,
        },
        batch_format="pyarrow",
        batch_size=BATCH_USERS,
        num_cpus=cfg.ray.cpus_per_data_task,
        concurrency=(1, actors),
    )  # fmt: skip
    written = lake.ray_write(ds, RECOMMENDATIONS, mode="replace", run_dates=[run_date])
    seconds = time.perf_counter() - start
    log.info(
        "wrote %s v%d: %d rows for %d users (run date %s, model %s version %s) in %.1f s (%.1f users/s)",
        written.table, written.version, written.rows, len(user_ids), run_date, kind, info.version, seconds,
        len(user_ids) / seconds if seconds else math.inf,
    )  # fmt: skip
    return ScoringResult(
        table=written.table, table_version=written.version, rows=written.rows, users=len(user_ids), model_name=kind,
        model_version=info.version, run_date=run_date, scored_at=scored_at, seconds=seconds,
    )  # fmt: skip
