"""The trained recommenders' settings searched on the validation splits: what a search sees, and what it hands on."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from shoplake.evaluation import VALIDATION
from shoplake.recommend.evaluate import validation_score
from shoplake.recommend.holdout import day_start
from shoplake.recommend.protocols import holdout_splits
from shoplake.recommend.tuning import search_settings
from shoplake.train.tune import SearchResult, TrialResult

D = dt.date(2024, 4, 1)
START = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc).timestamp()


def shop_rows(users: int = 24, items: int = 10, seed: int = 3) -> list[tuple[str, str, str, float]]:
    """Purchases over March: each user buys from one of two halves of the catalogue, a few days apart."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        half = u % 2
        for day in sorted(rng.choice(30, size=5, replace=False)):
            item = half * (items // 2) + int(rng.integers(items // 2))
            rows.append((f"u{u}", f"i{item}", "purchase", START + 86_400 * float(day) + 3_600 * float(rng.integers(8, 20))))
    return rows


def text_embeddings(texts):
    return np.random.default_rng(0).normal(size=(len(texts), 8)).astype(np.float32)


@pytest.fixture
def tcfg(make_cfg):
    return make_cfg(
        "recommender.holdout_days=7", "training.epochs=3", "training.embedding_dim=4", "sequence_model.epochs=3",
        "sequence_model.dim=8", "sequence_model.max_len=4", "sequence_model.layers=1", "sequence_model.batch_size=8",
    )  # fmt: skip


def fake_search(calls: list, best: dict, iteration: int):
    def search(cfg, name, trial, space, *, metric, mode, max_iterations, data=None, fixed=None):
        calls.append({"space": space, "max_iterations": max_iterations, "data": data})
        winner = TrialResult(best, 0.5, iteration, max_iterations)
        return SearchResult(name, metric, mode, winner, [winner], max_iterations)

    return search


@pytest.mark.parametrize("kind, section, best", [
    ("sasrec", "sequence_model", {"lr": 0.003, "dropout": 0.3}),
    ("mf", "training", {"embedding_dim": 16, "weight_decay": 0.0001}),
])  # fmt: skip
def test_the_best_settings_and_epoch_become_the_models_configuration(tcfg, make_events, monkeypatch, kind, section, best):
    from shoplake.recommend import tuning

    calls: list = []
    monkeypatch.setattr(tuning, "search", fake_search(calls, best, iteration=2))
    validations, _ = holdout_splits(tcfg, make_events(shop_rows(), D))
    tuned, searched = search_settings(tcfg, kind, validations, "s", validation_score, text_embeddings=text_embeddings)

    assert {k: getattr(getattr(tuned, section), k) for k in best} == best
    assert getattr(tuned, section).epochs == 2  # the best epoch
    assert calls[0]["max_iterations"] == 3 and calls[0]["data"]["splits"] == validations
    assert searched.best.settings == best
    # Nothing else of the configuration moves.
    assert tuned.recommender == tcfg.recommender and (tuned.training if kind == "sasrec" else tuned.sequence_model) == (
        tcfg.training if kind == "sasrec" else tcfg.sequence_model
    )


def test_without_a_search_space_or_a_validation_split_nothing_is_searched(tcfg, make_events, monkeypatch):
    from shoplake.recommend import tuning

    calls: list = []
    monkeypatch.setattr(tuning, "search", fake_search(calls, {}, 1))
    validations, _ = holdout_splits(tcfg, make_events(shop_rows(), D))
    cfg = tcfg.model_copy(update={"recommender": tcfg.recommender.model_copy(update={"mf_search": {}})})
    assert search_settings(cfg, "mf", validations, "s", validation_score) == (cfg, None)
    assert search_settings(tcfg, "mf", [], "s", validation_score) == (tcfg, None)
    assert search_settings(tcfg, "ease", validations, "s", validation_score) == (tcfg, None)
    assert calls == []


def test_a_leave_last_out_search_learns_and_judges_nothing_of_a_users_test_day(tcfg, make_events, monkeypatch):
    from shoplake.recommend import tuning

    cfg = tcfg.model_copy(update={"recommender": tcfg.recommender.model_copy(update={"protocol": "leave_last_out"})})
    calls: list = []
    monkeypatch.setattr(tuning, "search", fake_search(calls, {"lr": 0.01}, 1))
    events = make_events(shop_rows(), D)
    validations, test = holdout_splits(cfg, events)
    search_settings(cfg, "mf", validations, "s", validation_score)

    (split,) = calls[0]["data"]["splits"]
    assert split.split == VALIDATION
    judged = 0
    for t in test.eval_users():
        user = test.train.user_ids.ids[t]
        test_day = test.available_from[t]
        u = split.train.user_ids.lookup([user])[0]
        if u < 0:
            continue  # nothing of the user is learnt from at all
        # Learnt from and ranked from: only what the user did before the day of their test target; judged on
        # purchases of an earlier day.
        assert split.train.times[u].max(initial=0.0) < test_day
        mine = events.users == events.user_ids.lookup([user])[0]
        for i in split.relevant[u]:
            assert day_start(events.times[mine & (events.items == i)].min()) < test_day
        judged += bool(split.relevant[u])
    assert judged > 0


@pytest.mark.parametrize("kind, space", [
    ("mf", {"embedding_dim": [2, 6], "lr": [0.01, 0.05]}),
    ("sasrec", {"lr": [0.001, 0.01], "dropout": [0.0, 0.3]}),
])  # fmt: skip
def test_a_search_fits_on_validation_and_reports_ndcg_after_every_epoch(tcfg, make_events, ray_local, kind, space):
    cfg = tcfg.model_copy(update={
        "recommender": tcfg.recommender.model_copy(update={"protocol": "rolling", "holdout_days": 5, "rolling_cutoffs": 3,
                                                          "mf_search": space if kind == "mf" else {}}),
        "sequence_model": tcfg.sequence_model.model_copy(update={"search": space if kind == "sasrec" else {}}),
        "tuning": tcfg.tuning.model_copy(update={"num_samples": 2, "grace_period": 3}),
    })  # fmt: skip
    validations, _ = holdout_splits(cfg, make_events(shop_rows(), D))
    assert len(validations) == 2  # pooled, as the champion is chosen
    tuned, searched = search_settings(cfg, kind, validations, f"search-{kind}", validation_score, text_embeddings=text_embeddings)

    assert len(searched.trials) == 2 and all(t.error is None and t.iterations == 3 for t in searched.trials)
    assert all(0.0 <= t.best_score <= 1.0 for t in searched.trials)
    assert searched.best.best_score == max(t.best_score for t in searched.trials)
    section = tuned.sequence_model if kind == "sasrec" else tuned.training
    assert {k: getattr(section, k) for k in space} == searched.best.settings
    assert section.epochs == searched.best.best_iteration <= 3
