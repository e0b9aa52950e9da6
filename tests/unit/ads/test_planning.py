"""The plan's settings chosen on validation, and the rows a judged plan leaves in ops.model_metrics."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from shoplake import columns as C
from shoplake.ads import schemas as S
from shoplake.ads.bundle import Scores
from shoplake.ads.data import CATEGORICAL, NUMERIC, AdData
from shoplake.ads.planning import PLAN_MODEL, choose_settings, judgement_rows, plan_settings
from shoplake.evaluation import TEST, VALIDATION
from shoplake.train.tune import with_settings

AFF = NUMERIC.index(S.USER_CATEGORY_AFFINITY)
ITEMS = {"i1": ("c1", "shoes"), "i2": ("c1", "books"), "i3": ("c2", "toys")}
#: Each viewer's affinity to each category: u1 loves shoes, u2 books, u3 toys.
AFFINITY = {(u, c): 0.8 if (u, c) in {("u1", "shoes"), ("u2", "books"), ("u3", "toys")} else 0.05
            for u in ("u1", "u2", "u3") for c in ("shoes", "books", "toys")}  # fmt: skip


def logged(n: int, first_day: dt.date, days: int, seed: int) -> AdData:
    """``n`` impressions over ``days`` days from ``first_day``, each ad chosen evenly; a viewer's own category is clicked most."""
    rng = np.random.default_rng(seed)
    users = rng.choice(["u1", "u2", "u3"], n).astype(object)
    items = rng.choice(list(ITEMS), n).astype(object)
    cats = {name: np.array(["0"] * n, dtype=object) for name in CATEGORICAL}
    cats[C.ITEM_ID] = items
    cats[C.CAMPAIGN_ID] = np.array([ITEMS[i][0] for i in items], dtype=object)
    cats[C.CATEGORY] = np.array([ITEMS[i][1] for i in items], dtype=object)
    cats[C.PLACEMENT] = np.array(["search_top"] * n, dtype=object)
    cats[C.POSITION] = np.array(["1"] * n, dtype=object)
    num = np.zeros((n, len(NUMERIC)))
    num[:, AFF] = [AFFINITY[u, c] for u, c in zip(users, cats[C.CATEGORY])]
    num[:, NUMERIC.index(C.PRICE)] = 20.0
    click = (rng.random(n) < 0.02 + 0.2 * num[:, AFF]).astype(float)
    conversion = click * (rng.random(n) < 0.3)
    day = np.array([first_day + dt.timedelta(days=int(d)) for d in np.sort(rng.integers(0, days, n))], dtype=object)
    return AdData(cats, num, np.zeros((n, 2), np.float32), click, conversion, cats[C.PLACEMENT].copy(), day,
                  np.array([f"im{k}" for k in range(n)], dtype=object), click * 0.5, users, np.full(n, 1 / 3))  # fmt: skip


def affinity_score(data: AdData) -> Scores:
    p_ctr = 0.02 + 0.2 * data.num[:, AFF]
    return Scores(p_ctr, np.full(len(data), 0.3), p_ctr * 0.3)


def test_plan_settings_are_every_combination_of_the_search(make_cfg):
    cfg = with_settings(make_cfg(), "ads", {"plan_search": {"plan_exploration": [0.05, 0.2], "plan_max_ratio": [None, 2.0]}})
    assert plan_settings(cfg) == [
        {"plan_exploration": 0.05, "plan_max_ratio": None}, {"plan_exploration": 0.05, "plan_max_ratio": 2.0},
        {"plan_exploration": 0.2, "plan_max_ratio": None}, {"plan_exploration": 0.2, "plan_max_ratio": 2.0},
    ]  # fmt: skip
    assert plan_settings(with_settings(cfg, "ads", {"plan_search": {}})) == [{}]
    with pytest.raises(ValueError, match="plan_days"):
        with_settings(cfg, "ads", {"plan_search": {"plan_days": [3, 7]}})


def test_the_surest_margin_on_validation_chooses_and_every_setting_is_judged_on_validation_only(make_cfg):
    space = {"plan_exploration": [0.05, 0.5], "plan_max_ratio": [None, 1.5]}
    cfg = with_settings(make_cfg("evaluation.bootstrap_draws=100"), "ads", {"plan_search": space})
    history, valid = logged(3000, dt.date(2024, 1, 1), 10, 0), logged(2000, dt.date(2024, 1, 11), 5, 1)
    choice = choose_settings(cfg, history, valid, affinity_score)
    assert [s for s, _ in choice.tried] == plan_settings(cfg)
    lows = {tuple(s.values()): j.estimates.dr_margin.low for s, j in choice.tried}
    assert tuple(choice.settings.values()) == max(lows, key=lows.get)
    assert (choice.cfg.ads.plan_exploration, choice.cfg.ads.plan_max_ratio) == tuple(choice.settings.values())
    judged = choice.judgement
    assert len(judged.target) == len(valid) and judged.policy.epsilon == choice.cfg.ads.plan_exploration
    # Showing each viewer its own category is truly better than choosing evenly, and the chosen plan's margin shows it.
    assert judged.estimates.dr_margin.verdict() == "win"


def test_settings_no_plan_can_keep_are_tried_and_passed_over(make_cfg):
    # A model that expects nine clicks in ten impressions expects every way of filling the slots to spend beyond the budgets.
    cfg = with_settings(make_cfg("evaluation.bootstrap_draws=100"), "ads", {"plan_search": {"plan_exploration": [0.0, 0.5]}})
    history, valid = logged(3000, dt.date(2024, 1, 1), 10, 0), logged(500, dt.date(2024, 1, 11), 5, 1)
    choice = choose_settings(cfg, history, valid, lambda data: Scores(np.full(len(data), 0.9), np.full(len(data), 0.3),
                                                                      np.full(len(data), 0.27)))  # fmt: skip
    assert all(j is None for _, j in choice.tried)
    assert choice.settings == {} and choice.cfg is cfg and choice.judgement is None


def test_a_judged_plan_leaves_its_values_margins_and_settings(make_cfg):
    cfg = with_settings(make_cfg("evaluation.bootstrap_draws=100"), "ads", {"plan_search": {"plan_max_ratio": [2.0]}})
    history, valid = logged(3000, dt.date(2024, 1, 1), 10, 0), logged(500, dt.date(2024, 1, 11), 5, 1)
    judged = choose_settings(cfg, history, valid, affinity_score).judgement
    at = dt.datetime(2024, 1, 16, tzinfo=dt.timezone.utc)
    rows = {(r[C.SLICE], r[C.METRIC]): r for r in judgement_rows(judged, dt.date(2024, 1, 16), dt.date(2024, 1, 11), at, VALIDATION)
            .to_pylist()}  # fmt: skip
    assert {r[C.MODEL_NAME] for r in rows.values()} == {PLAN_MODEL} and {s for s, _ in rows} == {VALIDATION}
    values = {m: r[C.VALUE] for (_, m), r in rows.items()}
    for name in ("ips", "snips", "dr"):
        assert values[f"margin_{name}_low"] <= values[f"margin_{name}"] <= values[f"margin_{name}_high"]
        assert values[f"value_{name}"] - values["value_logged"] == pytest.approx(values[f"margin_{name}"], abs=1e-9)
    assert values["max_ratio"] == 2.0 and values["exploration"] == cfg.ads.plan_exploration
    assert {r[C.SLICE] for r in judgement_rows(judged, dt.date(2024, 1, 16), dt.date(2024, 1, 11), at).to_pylist()} == {TEST}
