"""The recommendation run's bookkeeping: validation splits pooled, metrics rows that name their protocol, split and cutoff."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from shoplake import columns as C
from shoplake.evaluation import TEST, VALIDATION, Interval
from shoplake.recommend.evaluate import ALL, COLD, SliceMetrics, pool
from shoplake.recommend.fitting import score_settings
from shoplake.recommend.report import metrics_table, recommend_champion
from shoplake.recommend.schemas import VALIDATION_POOLED
from shoplake.recommend.train import RecommendationResult, SplitMetrics, metrics_rows

RUN = dt.date(2024, 3, 29)
CUTOFFS = [dt.date(2024, 3, 1), dt.date(2024, 3, 8), dt.date(2024, 3, 15)]


def slices(values: list[float]) -> dict[str, SliceMetrics]:
    per_user = np.array(values)
    return {
        ALL: SliceMetrics({"ndcg@10": float(per_user.mean()), "coverage@10": 0.5}, len(values), per_user),
        COLD: SliceMetrics({"ndcg@10": float("nan")}, 0, np.zeros(0)),
    }


def test_pooled_validation_weighs_every_user_and_window_once():
    pooled = pool([slices([1.0, 0.0]), slices([0.0, 0.0, 0.0, 1.0])])
    assert pooled[ALL].n_users == 6
    assert pooled[ALL].metrics["ndcg@10"] == pytest.approx(2 / 6)  # not the mean of 0.5 and 0.25
    assert pooled[ALL].per_user.tolist() == [1.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    assert np.isnan(pooled[COLD].metrics["ndcg@10"]) and pooled[COLD].n_users == 0


def rolling_result() -> RecommendationResult:
    valid = [{"ease": slices([0.4, 0.2]), "trending": slices([0.1, 0.1])}, {"ease": slices([0.3]), "trending": slices([0.5])}]
    test = {"ease": slices([0.2, 0.3]), "trending": slices([0.1, 0.2])}
    pooled = {m: pool([v[m] for v in valid]) for m in ("ease", "trending")}
    splits = [
        SplitMetrics(VALIDATION, CUTOFFS[0], CUTOFFS[1], valid[0]),
        SplitMetrics(VALIDATION, CUTOFFS[1], CUTOFFS[2], valid[1]),
        SplitMetrics(TEST, CUTOFFS[2], RUN, test),
        SplitMetrics(VALIDATION_POOLED, CUTOFFS[0], CUTOFFS[2], pooled),
    ]
    return RecommendationResult(run_date=RUN, cutoff=CUTOFFS[2], metrics=test, main_model="sasrec", bundle_path="b",
                                model_version=None, mlflow_run_id="r1", metrics_version=None, seconds={}, histories={},
                                champion="ease", validation=pooled, protocol="rolling", splits=splits)  # fmt: skip


def test_metrics_rows_carry_the_protocol_the_split_and_the_cutoff():
    rows = metrics_rows(rolling_result(), dt.datetime(2024, 3, 29, tzinfo=dt.timezone.utc)).to_pylist()
    got = {(r[C.CUTOFF_DATE], r[C.SLICE], r[C.MODEL_NAME]): r for r in rows if r[C.METRIC] == "ndcg@10"}
    assert got[(CUTOFFS[0], "rolling/validation/all", "ease")][C.VALUE] == pytest.approx(0.3)
    assert got[(CUTOFFS[1], "rolling/validation/all", "trending")][C.VALUE] == pytest.approx(0.5)
    assert got[(CUTOFFS[2], "rolling/test/all", "ease")][C.N_EVALUATED] == 2
    pooled = got[(CUTOFFS[0], "rolling/validation_pooled/all", "trending")]
    assert pooled[C.VALUE] == pytest.approx(0.7 / 3) and pooled[C.N_EVALUATED] == 3
    assert {r[C.MLFLOW_RUN_ID] for r in rows} == {"r1"} and {r[C.RUN_DATE] for r in rows} == {RUN}
    assert len({(r[C.CUTOFF_DATE], r[C.MODEL_NAME], r[C.SLICE], r[C.METRIC]) for r in rows}) == len(rows)  # the table's keys


def test_the_report_reads_the_pooled_validation_of_a_rolling_run():
    rows = metrics_rows(rolling_result(), dt.datetime(2024, 3, 29, tzinfo=dt.timezone.utc)).to_pylist()
    # ease 0.3 and trending 0.233 pooled, though trending wins the later window.
    assert recommend_champion(rows) == "ease"
    from rich.console import Console

    console = Console(width=120, record=True)
    console.print(metrics_table(rows))
    text = " ".join(console.export_text().split())
    assert "recommenders (rolling)" in text and "valid 2 windows 2024-03-01..2024-03-15 pooled, test 2024-03-15..2024-03-29" in text


def test_the_margins_to_the_best_go_with_the_pooled_validation_and_choose_the_champion():
    result = rolling_result()
    result.margins = {"ease": Interval(0.0, 0.0, 0.0), "trending": Interval(-0.067, -0.4, 0.3)}
    rows = metrics_rows(result, dt.datetime(2024, 3, 29, tzinfo=dt.timezone.utc)).to_pylist()
    got = {(r[C.SLICE], r[C.MODEL_NAME], r[C.METRIC]): r for r in rows if r[C.METRIC].startswith("ndcg@10_to_best")}
    assert {slice_ for slice_, _, _ in got} == {"rolling/validation_pooled/all"}
    assert got[("rolling/validation_pooled/all", "trending", "ndcg@10_to_best_low")][C.VALUE] == pytest.approx(-0.4)
    assert got[("rolling/validation_pooled/all", "trending", "ndcg@10_to_best")][C.N_EVALUATED] == 3
    assert recommend_champion(rows) == "trending"  # simpler than ease, and validation cannot tell them apart


def test_the_sequence_model_tries_each_boost_with_each_trending_blend_and_window(make_cfg):
    cfg = make_cfg("sequence_model.trending_blend=[0.0,0.3]", "sequence_model.cold_boost=[0.0,2.0]", "recommender.trending_days=[7,14]")
    blends = [{"blend": 0.0}, {"blend": 0.3, "blend_days": 7}, {"blend": 0.3, "blend_days": 14}]
    assert score_settings(cfg, "sasrec") == [{"cold_boost": b, **blend} for b in (0.0, 2.0) for blend in blends]
    assert score_settings(cfg, "ease") == [{}]


def test_the_sequence_model_tries_each_ease_blend_with_the_penalty_validation_chose_for_ease(make_cfg):
    cfg = make_cfg("sequence_model.trending_blend=[0.0]", "sequence_model.cold_boost=[0.0]", "sequence_model.ease_blend=[0.0,0.4]")
    assert score_settings(cfg, "sasrec", ease_l2=200.0) == [
        {"cold_boost": 0.0, "blend": 0.0},
        {"cold_boost": 0.0, "blend": 0.0, "ease_blend": 0.4, "ease_l2": 200.0},
    ]
    # Without an EASE (a catalogue over recommender.ease_max_items) the network is tried alone, even with no 0 share.
    only_blends = make_cfg("sequence_model.trending_blend=[0.0]", "sequence_model.cold_boost=[0.0]", "sequence_model.ease_blend=[0.4]")
    assert score_settings(only_blends, "sasrec", ease_l2=None) == [{"cold_boost": 0.0, "blend": 0.0}]
    assert score_settings(only_blends, "sasrec", ease_l2=50.0) == [{"cold_boost": 0.0, "blend": 0.0, "ease_blend": 0.4, "ease_l2": 50.0}]
