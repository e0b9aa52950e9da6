"""Batch ad scores: ``serving.ad_scores`` for run date D, from the state at D's midnight.

The registered ads model is downloaded once on the driver, with D's partitions of
``gold.ad_state``, ``gold.ad_viewers`` and ``gold.ad_items`` and the budget multipliers
of D's ``serving.ad_plan`` (:func:`read_plan`); when the model reads the ad's text, the
ads it has no embedding for (new since it was trained) are encoded there once
(:func:`~shoplake.ads.scoring.ad_text`). The viewers, the unknown one among them, are
cut into blocks; Ray Data tasks (:func:`score_viewers`) score each viewer in every
placement, all the placement's ads in one call of the bundle
(:meth:`~shoplake.ads.scoring.AdState.score`, which ``POST /ads/rank`` uses too), and
rank them by their ranking value: the expected value shaded by the plan's multiplier
of the ad's campaign (:func:`~shoplake.ads.scoring.ranking_value`), the expected value
itself where D has no plan (a warning says so) or the plan no row for the campaign.
One Delta commit replaces the run date's partition.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from shoplake import columns as C
from shoplake.ads import schemas as S
from shoplake.ads.scoring import AdPlan, AdState, ad_text, ranks
from shoplake.config import Config

log = logging.getLogger(__name__)

#: Score rows per Ray Data block (whole viewers: at least one viewer's).
BLOCK_ROWS = 20_000
_VIEWER = "_viewer"


class MissingAdStateError(LookupError):
    """``gold.ad_state`` or ``gold.ad_viewers`` has no partition for the run date."""


def read_state(lake, run_date: dt.date | None = None) -> tuple[pa.Table, pa.Table, pa.Table, dt.date, dict[str, int]]:
    """D's rows of ``gold.ad_state``, ``gold.ad_viewers`` and ``gold.ad_items`` (default D: the latest of ``gold.ad_state``).

    Returns:
        ``(state, viewers, items, run_date, {table: Delta version})``.

    Raises:
        MissingAdStateError: A table lacks the run date.
    """
    dates = lake.run_dates(S.AD_STATE)
    if run_date is None:
        if not dates:
            raise MissingAdStateError(f"{S.AD_STATE.full_name} does not exist or is empty in {lake.root}: build the features first")
        run_date = max(dates)
    tables, versions = [], {}
    for spec in (S.AD_STATE, S.AD_VIEWERS, S.AD_ITEMS):
        version = lake.version(spec)
        if version is None or run_date not in lake.run_dates(spec, version=version):
            raise MissingAdStateError(f"{spec.full_name} has no run date {run_date} in {lake.root}")
        tables.append(lake.to_arrow(spec, version=version, run_date=run_date))
        versions[spec.full_name] = version
    return tables[0], tables[1], tables[2], run_date, versions


def read_plan(lake, run_date: dt.date, version: int | None = None) -> AdPlan | None:
    """The budget multipliers of ``serving.ad_plan`` for ``run_date`` (``version``; None: the latest).

    Returns:
        None when the table does not exist or holds no plan of ``run_date``.
    """
    version = lake.version(S.AD_PLAN) if version is None else version
    if version is None or run_date not in lake.run_dates(S.AD_PLAN, version=version):
        return None
    rows = lake.to_arrow(S.AD_PLAN, version=version, columns=[C.CAMPAIGN_ID, S.BUDGET_MULTIPLIER], run_date=run_date)
    return AdPlan.from_rows(rows, run_date)


def score_viewers(
    bundle, state: AdState, viewers: Sequence[int], model_version: str, run_date: dt.date, scored_at: dt.datetime
) -> pa.Table:
    """``serving.ad_scores`` rows of viewer rows ``viewers`` of ``state``: every ad of every placement, ranked per placement."""
    keys = ("user", "placement", "item", "campaign", "ctr", "cvr", "ctcvr", "value", "ranking", "multiplier", "rank")
    parts: dict[str, list] = {k: [] for k in keys}
    for viewer in viewers:
        for name, ads in state.placements.items():
            scores, value, ranking = state.score(bundle, viewer, name)
            n = len(ads)
            parts["user"].append([state.viewer_ids[viewer]] * n)
            parts["placement"].append([name] * n)
            parts["item"].append(ads.items.tolist())
            parts["campaign"].append(ads.campaigns.tolist())
            arrays = (("ctr", scores.p_ctr), ("cvr", scores.p_cvr), ("ctcvr", scores.p_ctcvr), ("value", value), ("ranking", ranking),
                      ("multiplier", ads.multiplier))  # fmt: skip
            for key, array in arrays:
                parts[key].append(np.asarray(array, dtype=np.float64))
            parts["rank"].append(ranks(ranking))
    n = sum(len(p) for p in parts["item"])

    def flat(key: str) -> list:
        return [v for part in parts[key] for v in part]

    def numbers(key: str, dtype) -> np.ndarray:
        return np.concatenate(parts[key]).astype(dtype) if parts[key] else np.zeros(0, dtype)

    multiplier = numbers("multiplier", np.float64)
    plan_date = state.plan.run_date if state.plan is not None else None
    return pa.table(
        {
            C.USER_ID: pa.array(flat("user"), pa.string()),
            C.PLACEMENT: pa.array(flat("placement"), pa.string()),
            C.ITEM_ID: pa.array(flat("item"), pa.string()),
            C.CAMPAIGN_ID: pa.array(flat("campaign"), pa.string()),
            S.P_CTR: pa.array(numbers("ctr", np.float64)),
            S.P_CVR: pa.array(numbers("cvr", np.float64)),
            S.P_CTCVR: pa.array(numbers("ctcvr", np.float64)),
            S.EXPECTED_VALUE: pa.array(numbers("value", np.float64)),
            S.RANK: pa.array(numbers("rank", np.int32)),
            C.MODEL_NAME: pa.array([bundle.model.kind] * n, pa.string()),
            C.MODEL_VERSION: pa.array([model_version] * n, pa.string()),
            C.RUN_DATE: pa.array([run_date] * n, pa.date32()),
            C.SCORED_AT: pa.array([scored_at] * n, pa.timestamp("us", tz="UTC")),
            S.RANKING_VALUE: pa.array(numbers("ranking", np.float64)),
            S.BUDGET_MULTIPLIER: pa.array(multiplier, mask=np.isnan(multiplier)),
            S.PLAN_RUN_DATE: pa.array([plan_date] * n, pa.date32()),
        },
        schema=S.AD_SCORES.arrow_schema(),
    )


def _score_block(
    batch: pa.Table, folder: str, cfg: Config, model_version: str, state: pa.Table, viewers: pa.Table, new_text: dict,
    run_date: dt.date, scored_at: dt.datetime, plan: AdPlan | None,
) -> pa.Table:  # fmt: skip
    """Ray Data task: viewer rows in, their ``serving.ad_scores`` rows out (the bundle loaded here, downloaded on another node)."""
    from shoplake.ads.bundle import AdsBundle
    from shoplake.registry import bundle_folder_here

    bundle = AdsBundle.load(bundle_folder_here(cfg, folder, model_version, cfg.ads.registered_model))
    ads = AdState(state, viewers, {**bundle.item_text, **new_text}, run_date, plan)
    return score_viewers(bundle, ads, batch[_VIEWER].to_pylist(), model_version, run_date, scored_at)


@dataclass
class AdScoringResult:
    """What an ads scoring run wrote."""

    version: int
    rows: int
    viewers: int
    placements: int
    ads: int
    new_ads: int
    model_name: str
    model_version: str
    run_date: dt.date
    scored_at: dt.datetime
    seconds: float
    plan_run_date: dt.date | None = None


def score_ads(
    cfg: Config,
    lake,
    run_date: dt.date | str | None = None,
    *,
    version: str | int | None = None,
    encode: Callable[[list[str | None]], np.ndarray] | None = None,
) -> AdScoringResult:
    """Score every viewer of D's state (and the unknown viewer) for every ad in every placement into ``serving.ad_scores``.

    The ads are ranked as D's ``serving.ad_plan`` weighs them; without a plan of D, by
    expected value (a warning says so).

    Args:
        cfg: ``ads.registered_model``, ``text_encoder``, ``ray.cpus_per_data_task``.
        lake: Reads ``gold.ad_state``, ``gold.ad_viewers``, ``gold.ad_items``, ``serving.ad_plan``; writes ``serving.ad_scores``.
        run_date: Default: the latest run date of ``gold.ad_state``.
        version: Registered version; None: the serving alias.
        encode: Texts to embeddings for new ads (default the configured text encoder).

    Raises:
        NoServingModel: No ads model registered (or ``version`` unknown).
        MissingAdStateError: No state for the run date.
    """
    from shoplake.ads.bundle import AdsBundle
    from shoplake.ray_runtime import init_ray
    from shoplake.registry import download_bundle

    start = time.perf_counter()
    if run_date is not None and not isinstance(run_date, dt.date):
        run_date = dt.date.fromisoformat(str(run_date))
    folder, info = download_bundle(cfg, version, registered_model=cfg.ads.registered_model)
    bundle = AdsBundle.load(folder)
    state_rows, viewer_rows, items, run_date, versions = read_state(lake, run_date)
    if encode is None:

        def encode(texts):
            from shoplake.text.encoder import encode_texts

            return encode_texts(texts, cfg.text_encoder)

    text = ad_text(bundle, items, encode)
    new_text = {i: v for i, v in text.items() if i not in bundle.item_text}
    plan = read_plan(lake, run_date)
    if plan is None:
        log.warning("no %s of %s: the ads are ranked by expected value, without budget multipliers", S.AD_PLAN.full_name, run_date)
    else:
        unplanned = sorted({c for c in state_rows[C.CAMPAIGN_ID].to_pylist() if c not in plan.multipliers})
        if unplanned:
            log.warning("%s of %s has no row for campaign(s) %s: their ads are ranked by expected value", S.AD_PLAN.full_name,
                        run_date, ", ".join(unplanned))  # fmt: skip
    state = AdState(state_rows, viewer_rows, text, run_date, plan)
    per_viewer = sum(len(p) for p in state.placements.values())
    scored_at = dt.datetime.now(dt.timezone.utc)
    ranked = "by expected value" if plan is None else f"as the plan of {plan.run_date} weighs them"
    log.info("scoring %d viewers x %d ads in %d placements of %s (%s) with %s version %s (%s; %d new ads encoded), ranked %s",
             viewer_rows.num_rows, len(state.ads), len(state.placements), run_date, versions, info.name, info.version,
             bundle.model.kind, len(new_text), ranked)  # fmt: skip
    ray = init_ray(cfg)
    if per_viewer:
        step = max(1, BLOCK_ROWS // per_viewer)
        blocks = [pa.table({_VIEWER: pa.array(range(i, min(i + step, viewer_rows.num_rows)), pa.int64())})
                  for i in range(0, viewer_rows.num_rows, step)]  # fmt: skip
        kwargs = {"folder": str(folder), "cfg": cfg, "model_version": info.version, "state": state_rows, "viewers": viewer_rows,
                  "new_text": new_text, "run_date": run_date, "scored_at": scored_at, "plan": plan}  # fmt: skip
        scored = (
            ray.data.from_arrow(blocks)
            .map_batches(_score_block, fn_kwargs=kwargs, batch_format="pyarrow", batch_size=None, num_cpus=cfg.ray.cpus_per_data_task)
            .materialize()
        )
    else:  # a state without ads still replaces the run date's partition (with nothing)
        scored = ray.data.from_arrow(score_viewers(bundle, state, [], info.version, run_date, scored_at))
    written = lake.ray_write(scored, S.AD_SCORES, mode="replace", run_dates=[run_date])
    seconds = time.perf_counter() - start
    log.info("wrote %s v%d: %d scores in %.1f s", written.table, written.version, written.rows, seconds)
    return AdScoringResult(
        version=written.version, rows=written.rows, viewers=viewer_rows.num_rows, placements=len(state.placements),
        ads=len(state.ads), new_ads=len(new_text), model_name=bundle.model.kind, model_version=info.version, run_date=run_date,
        scored_at=scored_at, seconds=seconds, plan_run_date=plan.run_date if plan is not None else None,
    )  # fmt: skip
