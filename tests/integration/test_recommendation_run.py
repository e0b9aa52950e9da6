"""The recommendation run on a hand-made lake: time-cutoff split, metrics by hand, ops.model_metrics, registry."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pyarrow as pa
import pytest

from shoplake import columns as C
from shoplake.lake import Lake
from shoplake.recommend.bundle import RecommenderBundle
from shoplake.recommend.evaluate import evaluate_scorer
from shoplake.recommend.holdout import MissingFeaturesError, load_events
from shoplake.recommend.models.scorers import PopularityScorer
from shoplake.recommend.protocols import window_split
from shoplake.recommend.schemas import INTERACTIONS, ITEM_FEATURES, USER_ITEM_MATRIX
from shoplake.recommend.train import run_recommendation
from shoplake.train.model_metrics import MODEL_METRICS

D = dt.date(2024, 3, 15)
CUTOFF = dt.date(2024, 3, 8)  # D - holdout_days
ITEMS = ["i1", "i2", "i3", "i4", "i5", "i6"]  # IdMap order: indices 0..5


def ts(day: int, hour: int = 12, minute: int = 0) -> dt.datetime:
    return dt.datetime(2024, 3, day, hour, minute, tzinfo=dt.timezone.utc)


# (user, item, event type, time): before the cutoff ...
BEFORE = [
    ("u1", "i1", "view", ts(1, 10, 0)),
    ("u1", "i1", "purchase", ts(1, 10, 5)),  # the same step as the view: one entry, bought
    ("u1", "i2", "purchase", ts(2)),
    ("u2", "i2", "view", ts(3)),
    ("u2", "i3", "purchase", ts(4)),
    ("u3", "i2", "purchase", ts(5)),  # one order: equal times are ordered by item id
    ("u3", "i1", "purchase", ts(5)),
]
# ... and in the held-out days [CUTOFF, D).
HELD_OUT = [
    ("u1", "i3", "purchase", ts(9)),  # relevant
    ("u1", "i2", "purchase", ts(10)),  # bought before: not a hit to find when excluding seen items
    ("u1", "i4", "view", ts(11)),  # not a purchase
    ("u2", "i6", "purchase", ts(12)),  # relevant, and i6 was never sold before the cutoff (cold)
    ("u4", "i1", "purchase", ts(10)),  # a user new since the cutoff: nothing to rank from
]
WEIGHTS = {"purchase": 8.0, "view": 1.0}


def interactions(rows, run_date):
    """silver.interactions holding ``rows``, every one known since ``run_date``."""
    return pa.Table.from_pylist(
        [
            {C.USER_ID: u, C.ITEM_ID: i, C.EVENT_TYPE: e, C.EVENT_TS: t, C.SOURCE: "orders", C.EVENT_DATE: t.date(), C.KNOWN_FROM: run_date}
            for u, i, e, t in rows
        ],
        schema=INTERACTIONS.arrow_schema(),
    )


def matrix(rows, run_date):
    pairs: dict[tuple[str, str], float] = {}
    for u, i, e, _ in rows:
        pairs[(u, i)] = max(pairs.get((u, i), 0.0), WEIGHTS[e])
    return pa.Table.from_pylist(
        [
            {
                C.USER_ID: u,
                C.ITEM_ID: i,
                C.WEIGHT: w,
                C.N_VIEWS: 0,
                C.N_CLICKS: 0,
                C.N_CARTS: 0,
                C.N_PURCHASES: 1,
                C.LAST_INTERACTION_TS: ts(1),
                C.RUN_DATE: run_date,
            }  # fmt: skip
            for (u, i), w in sorted(pairs.items())
        ],
        schema=USER_ITEM_MATRIX.arrow_schema(),
    )


def items(run_date, ids):
    return pa.Table.from_pylist(
        [
            {
                C.ITEM_ID: i,
                C.TITLE: f"title {i}",
                C.DESCRIPTION: None,
                C.TEXT: f"title {i}",
                C.CATEGORY: "odd" if int(i[1]) % 2 else "even",
                C.BRAND: None,
                C.PRICE: 1.0,
                C.PRICE_BAND: 0,
                C.POPULARITY: 0,
                C.N_PURCHASES_30D: 0,
                C.FIRST_SEEN_TS: ts(1),
                C.RUN_DATE: run_date,
            }  # fmt: skip
            for i in ids
        ],
        schema=ITEM_FEATURES.arrow_schema(),
    )


def load_split(cfg, lake, run_date, cutoff=None):
    """The held-out window before ``run_date`` (of ``recommender.holdout_days``), cut from its snapshot."""
    cutoff = cutoff or run_date - dt.timedelta(days=cfg.recommender.holdout_days)
    return window_split(load_events(lake, run_date, cfg), cfg, cutoff, cutoff + dt.timedelta(days=cfg.recommender.holdout_days))


@pytest.fixture
def rec_lake(ray_local, make_cfg):
    cfg = make_cfg("lake.engine=delta-rs", "recommender.holdout_days=7", "recommender.models=[popularity,cooccurrence]",
                   "recommender.main_model=popularity")  # fmt: skip
    lake = Lake(cfg)
    data = ray_local.data
    # One snapshot, the run date's: every history is cut from it by event time.
    lake.ray_write(data.from_arrow(interactions(BEFORE + HELD_OUT, D)), INTERACTIONS)
    lake.ray_write(data.from_arrow(matrix(BEFORE + HELD_OUT, D)), USER_ITEM_MATRIX)
    lake.ray_write(data.from_arrow(items(D, ITEMS)), ITEM_FEATURES)
    return cfg, lake


def test_the_split_holds_out_later_purchases_of_known_users(rec_lake):
    cfg, lake = rec_lake
    split = load_split(cfg, lake, D)

    train = split.train
    assert split.cutoff == CUTOFF and train.as_of == CUTOFF
    assert train.user_ids.ids == ["u1", "u2", "u3"]  # u4 is new since the cutoff
    assert train.item_ids.ids == ITEMS  # the run date's catalogue, i6 included
    # Sequences: time order, a repeated item collapsed into one step, equal times by item id.
    assert [train.item_ids.decode(s) for s in train.sequences] == [["i1", "i2"], ["i2", "i3"], ["i1", "i2"]]
    assert [b.tolist() for b in train.bought] == [[True, True], [False, True], [True, True]]
    # A step's time is its first interaction's (u1's view of i1 at 10:00).
    assert train.times[0][0] == ts(1, 10, 0).timestamp() and train.times[2].tolist() == [ts(5).timestamp()] * 2
    # Held out: u1's new purchase i3 (i2 was bought before, i4 only viewed); u2's i6; u3 nothing.
    assert [sorted(train.item_ids.decode(r)) for r in split.relevant] == [["i3"], ["i6"], []]
    assert split.eval_users().tolist() == [0, 1]
    assert train.item_ids.decode(np.flatnonzero(split.cold_items)) == ["i4", "i5", "i6"]


def test_seen_items_count_when_exclusion_is_off(rec_lake, make_cfg):
    cfg, lake = rec_lake
    cfg = cfg.model_copy(update={"recommender": cfg.recommender.model_copy(update={"exclude_seen": False})})
    split = load_split(cfg, lake, D)
    assert sorted(split.train.item_ids.decode(split.relevant[0])) == ["i2", "i3"]


def test_popularity_metrics_match_hand_computed_values(rec_lake):
    cfg, lake = rec_lake
    split = load_split(cfg, lake, D)
    # Popularity by summed weight: i1 16, i2 17, i3 8, others 0.
    result = evaluate_scorer(PopularityScorer(split.train.popularity()), split)

    # u1 (had i1, i2): ranking i3, i4, i5, i6 -> i3 first. u2 (had i2, i3): i1, i4, i5, i6 -> i6 fourth.
    u2_ndcg = 1 / math.log2(5)
    assert result["all"].n_users == 2
    assert result["all"].metrics["ndcg@10"] == pytest.approx((1 + u2_ndcg) / 2)
    assert result["all"].metrics["mrr"] == pytest.approx((1 + 1 / 4) / 2)
    assert result["all"].metrics["hr@10"] == 1.0
    # Cold slice: only u2's i6.
    assert result["cold_items"].n_users == 1
    assert result["cold_items"].metrics["ndcg@10"] == pytest.approx(u2_ndcg)


def test_run_writes_metrics_registers_the_main_model_and_reruns_idempotently(rec_lake):
    from shoplake.recommend.bundle import load_serving_bundle

    cfg, lake = rec_lake
    assert lake.run_dates(MODEL_METRICS) == []  # no table yet
    first = run_recommendation(cfg, lake, name="rec-a")
    assert lake.run_dates(MODEL_METRICS) == [D]

    assert first.run_date == D and first.cutoff == CUTOFF  # the latest snapshot by default
    assert set(first.metrics) == {"popularity", "cooccurrence"}
    rows = lake.to_arrow(MODEL_METRICS, run_date=D)
    got = {(r[C.MODEL_NAME], r[C.SLICE], r[C.METRIC]): r for r in rows.to_pylist()}
    pop = got[("popularity", "time_cutoff/test/all", "ndcg@10")]
    assert pop[C.VALUE] == pytest.approx((1 + 1 / math.log2(5)) / 2) and pop[C.N_EVALUATED] == 2
    assert pop[C.CUTOFF_DATE] == CUTOFF and pop[C.MLFLOW_RUN_ID] == first.mlflow_run_id
    assert rows.schema.equals(MODEL_METRICS.arrow_schema(), check_metadata=False)

    bundle, info = load_serving_bundle(cfg)
    assert info.version == first.model_version and bundle.kind == "popularity"
    # Refit on the run date's snapshot: u4 is known now, and nothing it had comes back.
    assert "u4" in bundle.user_ids
    recs = bundle.recommend(["u1"], k=3)[0]
    assert not {r.item_id for r in recs} & {"i1", "i2", "i3"}
    assert RecommenderBundle.load(first.bundle_path).metadata["table_versions"]

    second = run_recommendation(cfg, lake, name="rec-b")
    assert lake.to_arrow(MODEL_METRICS, run_date=D).num_rows == rows.num_rows  # replaced, not appended
    assert second.metrics_version == first.metrics_version + 1
    assert int(second.model_version) == int(first.model_version) + 1
    assert load_serving_bundle(cfg)[1].version == second.model_version


def test_a_missing_snapshot_is_a_clear_error(rec_lake):
    cfg, lake = rec_lake
    # silver.interactions, stored once, has a view of any date; the date's gold partition is missing.
    with pytest.raises(MissingFeaturesError, match=r"gold.item_features .* no rows for run_date 2024-03-16"):
        run_recommendation(cfg, lake, D + dt.timedelta(days=1), register=False)


def test_the_history_as_of_the_run_date_is_its_user_item_matrix(rec_lake, make_cfg):
    from shoplake.recommend.holdout import load_training_data

    cfg, lake = rec_lake
    cfg = make_cfg("lake.engine=delta-rs", "features.half_life_days=1000000")  # no decay: the fixture's weights
    data = load_training_data(lake, D, cfg)
    got = {(data.user_ids.ids[u], data.item_ids.ids[i]): w for u, i, w in zip(data.pair_users, data.pair_items, data.pair_weights)}
    expected = {(u, i): 0.0 for u, i, _, _ in BEFORE + HELD_OUT}
    for u, i, e, _ in BEFORE + HELD_OUT:
        expected[(u, i)] += WEIGHTS[e]
    assert got == pytest.approx(expected, rel=1e-4)


V = dt.date(2024, 3, 1)  # the validation cutoff: CUTOFF - holdout_days
EARLY = [  # history before V; BEFORE is then the validation window's held-out days [V, CUTOFF)
    ("u1", "i5", "purchase", dt.datetime(2024, 2, 20, tzinfo=dt.timezone.utc)),
    ("u2", "i5", "purchase", dt.datetime(2024, 2, 21, tzinfo=dt.timezone.utc)),
    ("u2", "i1", "purchase", dt.datetime(2024, 2, 22, tzinfo=dt.timezone.utc)),
    ("u3", "i4", "purchase", dt.datetime(2024, 2, 23, tzinfo=dt.timezone.utc)),
]


def with_early_history(lake, ray_local):
    """The run date's snapshot with EARLY in it too: a validation window has users to judge."""
    data = ray_local.data
    lake.ray_write(data.from_arrow(interactions(EARLY + BEFORE + HELD_OUT, D)), INTERACTIONS)
    lake.ray_write(data.from_arrow(matrix(EARLY + BEFORE + HELD_OUT, D)), USER_ITEM_MATRIX, mode="replace", run_dates=[D])


def test_the_champion_is_measured_on_validation_and_served(rec_lake, ray_local):
    from shoplake.recommend.bundle import load_serving_bundle
    from shoplake.recommend.report import recommend_champion

    cfg, lake = rec_lake
    with_early_history(lake, ray_local)

    result = run_recommendation(cfg, lake, name="rec-v")
    assert result.validation_cutoff == V and set(result.validation) == {"popularity", "cooccurrence"}
    rows = lake.to_arrow(MODEL_METRICS, run_date=D).to_pylist()
    # Both windows, each under its cutoff, each row naming its protocol and split.
    assert {(r[C.CUTOFF_DATE], r[C.SLICE]) for r in rows} == {
        (V, "time_cutoff/validation/all"), (V, "time_cutoff/validation/cold_items"),
        (CUTOFF, "time_cutoff/test/all"), (CUTOFF, "time_cutoff/test/cold_items"),
    }  # fmt: skip
    valid = {(r[C.MODEL_NAME], r[C.METRIC]): r[C.VALUE] for r in rows if r[C.SLICE] == "time_cutoff/validation/all"}
    best = max(("popularity", "cooccurrence"), key=lambda m: valid[(m, "ndcg@10")])
    assert valid[(best, "ndcg@10_to_best")] == valid[(best, "ndcg@10_to_best_high")] == 0.0
    # The simplest model whose paired difference with the best reaches zero.
    simplest = next(m for m in ("popularity", "cooccurrence") if valid[(m, "ndcg@10_to_best_high")] >= 0)
    assert result.champion == recommend_champion(rows) == simplest
    assert load_serving_bundle(cfg)[0].kind == result.champion
    other, diff = result.versus
    assert other != result.champion and diff.low <= diff.value <= diff.high
    assert diff.value == pytest.approx(result.ndcg(result.champion) - result.ndcg(other))
    low = next(r[C.VALUE] for r in rows if r[C.CUTOFF_DATE] == CUTOFF and r[C.MODEL_NAME] == other and r[C.METRIC] == "ndcg@10_low")
    assert low <= result.ndcg(other)


def test_without_a_validation_snapshot_the_configured_model_is_served(rec_lake, caplog):
    cfg, lake = rec_lake
    with caplog.at_level("WARNING", logger="shoplake.recommend.train"):
        result = run_recommendation(cfg, lake, name="rec-n", register=False)
    assert result.champion == cfg.recommender.main_model == "popularity" and result.versus is None
    assert "no validation window before 2024-03-08" in caplog.text


def test_the_tuned_baselines_take_their_setting_from_validation(rec_lake, ray_local):
    from shoplake.recommend.bundle import load_serving_bundle
    from shoplake.recommend.fitting import fit_model, settings

    cfg, lake = rec_lake
    with_early_history(lake, ray_local)
    rc = cfg.recommender.model_copy(update={"models": ["trending", "item_knn", "ease"], "trending_days": [1, 30],
                                            "knn_neighbors": [1, 5], "ease_l2": [0.5, 50.0], "champion_rule": "best"})  # fmt: skip
    cfg = cfg.model_copy(update={"recommender": rc})

    result = run_recommendation(cfg, lake, name="rec-tuned")
    assert set(result.validation) == set(result.metrics) == {"trending", "item_knn", "ease"}
    valid = load_split(cfg, lake, D, V)
    for kind in rc.models:
        scores = {s: evaluate_scorer(fit_model(kind, valid.train, cfg, "t", setting=s).scorer, valid)["all"].metrics["ndcg@10"]
                  for s in settings(cfg, kind)}  # fmt: skip
        # The first of the best settings on validation, and its figure is the one reported.
        assert result.tuned[kind] == max(scores, key=scores.get)
        assert result.ndcg(kind, split="validation") == pytest.approx(scores[result.tuned[kind]])
    assert result.champion == max(result.validation, key=lambda kind: result.ndcg(kind, split="validation"))
    assert not result.margins  # the best of validation, no margins measured
    bundle, _ = load_serving_bundle(cfg)
    assert bundle.kind == result.champion and bundle.metadata["params"] == {
        {"trending": "days", "item_knn": "neighbors", "ease": "l2"}[result.champion]: result.tuned[result.champion]
    }
    assert len(bundle.recommend(["u1"], k=2)[0]) <= 2


def with_protocol(cfg, **settings):
    return cfg.model_copy(update={"recommender": cfg.recommender.model_copy(update=settings)})


def test_leave_last_out_judges_each_users_last_purchase_day_and_says_so(rec_lake, ray_local):
    cfg, lake = rec_lake
    with_early_history(lake, ray_local)
    result = run_recommendation(with_protocol(cfg, protocol="leave_last_out"), lake, name="rec-llo", register=False)

    rows = [r for r in lake.to_arrow(MODEL_METRICS, run_date=D).to_pylist() if r[C.METRIC] == "ndcg@10"]
    # Test: u1's March 9, u2's March 12, u3's March 5 order (u4 has no history before its only purchase).
    # Validation: u1's March 2, u2's March 4 (u3's first purchase day has nothing before it).
    # Cold: u2's i6 (never bought before) on test; on validation u2's i3, which only u1's later test purchase had.
    got = {(r[C.SLICE], r[C.CUTOFF_DATE], r[C.N_EVALUATED]) for r in rows if r[C.MODEL_NAME] == "popularity"}
    assert got == {("leave_last_out/validation/all", dt.date(2024, 3, 2), 2), ("leave_last_out/test/all", dt.date(2024, 3, 5), 3),
                   ("leave_last_out/validation/cold_items", dt.date(2024, 3, 2), 1),
                   ("leave_last_out/test/cold_items", dt.date(2024, 3, 5), 1)}  # fmt: skip
    assert result.protocol == "leave_last_out" and result.champion in {"popularity", "cooccurrence"}


def test_rolling_pools_its_validation_windows_for_the_champion(rec_lake, ray_local):
    from shoplake.recommend.report import recommend_champion

    cfg, lake = rec_lake
    with_early_history(lake, ray_local)
    cfg = with_protocol(cfg, protocol="rolling", holdout_days=4, rolling_cutoffs=3)
    result = run_recommendation(cfg, lake, name="rec-rolling", register=False)

    rows = lake.to_arrow(MODEL_METRICS, run_date=D).to_pylist()
    ndcg = {(r[C.SLICE], r[C.CUTOFF_DATE]): r for r in rows if r[C.METRIC] == "ndcg@10" and r[C.MODEL_NAME] == "popularity"}
    # Windows [3, 7) and [7, 11) validate (2 users, then 1), [11, 15) tests; the pooled rows sit under the first cutoff.
    assert {(s, c, r[C.N_EVALUATED]) for (s, c), r in ndcg.items() if s.endswith("/all")} == {
        ("rolling/validation/all", dt.date(2024, 3, 3), 2), ("rolling/validation/all", dt.date(2024, 3, 7), 1),
        ("rolling/test/all", dt.date(2024, 3, 11), 1), ("rolling/validation_pooled/all", dt.date(2024, 3, 3), 3),
    }  # fmt: skip
    pooled = ndcg[("rolling/validation_pooled/all", dt.date(2024, 3, 3))][C.VALUE]
    by_window = [ndcg[("rolling/validation/all", dt.date(2024, 3, d))][C.VALUE] for d in (3, 7)]
    assert pooled == pytest.approx((2 * by_window[0] + by_window[1]) / 3)
    assert result.ndcg("popularity", split="validation") == pytest.approx(pooled)
    assert result.champion == recommend_champion(rows)


@pytest.mark.slow  # a search of two trials, three Ray Train fits of the sequence model and the text encoder: about a minute
def test_the_sequence_models_score_settings_are_chosen_on_validation_and_served(rec_lake, ray_local):
    from shoplake.recommend.bundle import load_serving_bundle
    from shoplake.recommend.fitting import BLEND, BLEND_DAYS, COLD_BOOST, score_settings, tuned_settings

    cfg, lake = rec_lake
    with_early_history(lake, ray_local)
    sm = cfg.sequence_model.model_copy(update={"epochs": 2, "dim": 8, "heads": 2, "layers": 1, "max_len": 4, "batch_size": 4,
                                               "cold_boost": [0.0, 3.0], "trending_blend": [0.0, 0.5]})  # fmt: skip
    cfg = with_protocol(cfg, models=["sasrec"], main_model="sasrec", trending_days=[7]).model_copy(update={"sequence_model": sm})
    result = run_recommendation(cfg, lake, name="rec-sasrec")

    tuned = tuned_settings(result.tuned, "sasrec")
    chosen = {k: v for k, v in tuned.items() if k in (COLD_BOOST, BLEND, BLEND_DAYS)}
    assert chosen in score_settings(cfg, "sasrec")
    bundle, _ = load_serving_bundle(cfg)
    assert bundle.kind == "sasrec" and {k: bundle.scorer.model_config[k] for k in chosen} == chosen
    assert (bundle.scorer.prior is not None) == bool(chosen.get("blend"))
    # The training settings its search chose on validation (sequence_model.search) are the served model's too.
    assert bundle.metadata["tuned"] == tuned and bundle.scorer.model_config["dropout"] == tuned["dropout"]
    assert len(result.histories["sasrec"]) == tuned["epochs"]


@pytest.mark.slow  # a search of two trials and three Ray Train fits of matrix factorization: about a minute
def test_the_searched_settings_come_from_validation_alone_and_are_served(rec_lake, ray_local, monkeypatch):
    from shoplake.recommend import tuning
    from shoplake.recommend.bundle import load_serving_bundle
    from shoplake.recommend.fitting import tuned_settings

    cfg, lake = rec_lake
    with_early_history(lake, ray_local)
    cfg = with_protocol(cfg, models=["mf"], main_model="mf", mf_search={"embedding_dim": [4, 6]})
    cfg = cfg.model_copy(update={"training": cfg.training.model_copy(update={"epochs": 3})})
    handed = []
    search = tuning.search

    def spy(*args, data, **kwargs):
        handed.append(data["splits"])
        return search(*args, data=data, **kwargs)

    monkeypatch.setattr(tuning, "search", spy)
    result = run_recommendation(cfg, lake, name="rec-mf-search")

    # The search learnt from the history before V and was judged on [V, CUTOFF): no test purchase reached it.
    (splits,) = handed
    assert [(s.split, s.cutoff, s.end) for s in splits] == [("validation", V, CUTOFF)]
    (valid,) = splits
    assert max(t.max() for t in valid.train.times if len(t)) < dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc).timestamp()
    test = load_split(cfg, lake, D)
    pairs = {(s.train.user_ids.ids[u], s.train.item_ids.ids[i]) for s in (valid,) for u, rel in enumerate(s.relevant) for i in rel}
    test_pairs = {(test.train.user_ids.ids[u], test.train.item_ids.ids[i]) for u, rel in enumerate(test.relevant) for i in rel}
    assert test_pairs == {("u1", "i3"), ("u2", "i6")} and not pairs & test_pairs

    # What it chose is what the test split was measured with and what is served.
    searched = result.searches["mf"]
    chosen = tuned_settings(result.tuned, "mf")
    assert chosen == {"embedding_dim": searched.best.settings["embedding_dim"], "epochs": searched.best.best_iteration}
    assert len(result.histories["mf"]) == chosen["epochs"]
    bundle, _ = load_serving_bundle(cfg)
    assert bundle.kind == "mf" and bundle.scorer.item_emb.shape[1] == chosen["embedding_dim"]
    assert bundle.metadata["tuned"] == chosen
