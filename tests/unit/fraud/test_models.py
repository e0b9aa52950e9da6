"""Fraud models on a seeded synthetic table: rules, XGBoost and the tabular network through Ray Train, the bundle."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
import xgboost
from sklearn.metrics import average_precision_score

from shoplake.config import load_config
from shoplake.fraud.bundle import FraudBundle
from shoplake.fraud.declarations import FEATURE_NAMES, FEATURES
from shoplake.fraud.models.base import FeatureMismatchError, RulesModel, rules_scores
from shoplake.fraud.models.gbt import GBTModel, train_gbt
from shoplake.fraud.models.tabular import TabularNNModel, train_tabular_nn
from shoplake.fraud.schemas import APPROVE, DECLINE, REVIEW

COL = {name: i for i, name in enumerate(FEATURE_NAMES)}
N_ROWS, N_TRAIN = 3000, 2400
RULES = {"amount_limit": 300.0, "velocity_limit": 3}
#: Small runs: the whole file stays well under a minute on 2 cores.
OVERRIDES = ("fraud.gbt_rounds=60", "fraud.nn_epochs=3", "fraud.nn_lr=0.01", "fraud.nn_batch_size=128", "fraud.nn_hidden=32")
_WINDOW_RATE = {3_600: 0.1, 86_400: 0.8, 604_800: 3.0}


def synthetic_table(n: int = N_ROWS, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """Payments with every feature column and about 3 % fraud of two planted kinds.

    Fraud is a burst on one device (``device_count_1h`` of 5 to 10) or a new device
    paying far above the user's mean (``new_device_for_user`` and
    ``amount_to_user_mean`` > 3). Decoys: shared devices with 3-4 payments an hour
    (the velocity rule fires on them), big spenders on known devices; 5 % of the
    planted frauds are labelled legitimate and 0.2 % of all rows fraud at random.
    """
    rng = np.random.default_rng(seed)
    X = np.zeros((n, len(FEATURE_NAMES)))
    for f in FEATURES:
        j = COL[f.name]
        if f.kind == "window_count":
            X[:, j] = rng.poisson(_WINDOW_RATE[f.window_s], n)
        elif f.kind == "window_amount":
            X[:, j] = X[:, COL[f.name.replace("amount", "count")]] * rng.lognormal(3.5, 0.8, n)
        elif f.kind == "window_distinct":
            X[:, j] = 1 + rng.poisson(0.1, n)
        elif f.kind == "first_seen":
            X[:, j] = rng.random(n) < 0.1
    X[:, COL["user_prior_payments"]] = rng.poisson(10, n)
    X[:, COL["user_age_days"]] = rng.uniform(0, 365, n)
    X[:, COL["amount_to_user_mean"]] = rng.lognormal(0, 0.4, n)
    X[:, COL["hours_since_user_prev"]] = rng.uniform(0, 720, n)
    X[:, COL["amount"]] = rng.lognormal(3.5, 1.0, n)
    X[:, COL["n_lines"]] = 1 + rng.poisson(1, n)
    X[:, COL["n_units"]] = X[:, COL["n_lines"]] + rng.poisson(1, n)
    X[:, COL["hour_of_day"]] = rng.uniform(0, 24, n)
    X[:, COL["shipping_differs"]] = rng.random(n) < 0.05

    kind = rng.random(n)
    burst, new_device = kind < 0.015, (kind >= 0.015) & (kind < 0.03)
    shared, big_spender = (kind >= 0.03) & (kind < 0.05), (kind >= 0.05) & (kind < 0.065)
    X[burst, COL["device_count_1h"]] = rng.integers(5, 11, burst.sum())
    X[shared, COL["device_count_1h"]] = rng.integers(3, 5, shared.sum())
    X[new_device, COL["new_device_for_user"]] = 1
    X[new_device, COL["amount_to_user_mean"]] = rng.uniform(3.5, 9, new_device.sum())
    X[big_spender, COL["new_device_for_user"]] = 0
    X[big_spender, COL["amount_to_user_mean"]] = rng.uniform(3.5, 9, big_spender.sum())
    y = (burst | new_device) & (rng.random(n) > 0.05)
    y |= rng.random(n) < 0.002
    return X, y.astype(np.float64)


@pytest.fixture(scope="module")
def data():
    X, y = synthetic_table()
    return X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:], y[N_TRAIN:]


@pytest.fixture(scope="module")
def fraud_cfg(tmp_path_factory, ray_local):
    """Like ``make_cfg(*OVERRIDES)``, but shared by the module so each model trains once."""
    from helpers import TEST_OVERRIDES

    root = tmp_path_factory.mktemp("fraud")
    paths = (f"lake.root={root}/lake", f"landing.root={root}/landing", f"runs_dir={root}/runs")
    return load_config("local", [*TEST_OVERRIDES, *paths, *OVERRIDES])


@pytest.fixture(scope="module")
def gbt(fraud_cfg, data) -> GBTModel:
    return train_gbt(fraud_cfg, *data, name="fraud-gbt")


@pytest.fixture(scope="module")
def nn(fraud_cfg, data) -> TabularNNModel:
    return train_tabular_nn(fraud_cfg, *data, name="fraud-nn")


@pytest.fixture(params=["gbt", "nn"])
def model(request):
    return request.getfixturevalue(request.param)


def bundle_of(model, review: float = 0.3, decline: float = 0.8) -> FraudBundle:
    return FraudBundle(model, FEATURE_NAMES, review, decline, {"run_date": "2024-05-01", "metrics": {"valid.pr_auc": 0.9}})


def typical_row(**values: float) -> np.ndarray:
    """A row at the synthetic table's typical values, with ``values`` set."""
    X, _ = synthetic_table()
    row = np.median(X, axis=0)
    for name, value in values.items():
        row[COL[name]] = value
    return row[None, :]


def test_rules_score_is_the_largest_ratio_to_its_limit():
    rows = np.zeros((3, len(FEATURE_NAMES)))
    rows[0, COL["amount"]], rows[0, COL["device_count_1h"]] = 150.0, 6
    rows[1, COL["amount"]], rows[1, COL["card_count_1h"]] = 600.0, 1
    rows[2, COL["amount"]], rows[2, COL["user_count_24h"]] = 30.0, 50
    assert rules_scores(rows, FEATURE_NAMES, **RULES) == pytest.approx([2.0, 2.0, 0.1])
    # Columns are found by name, in any order.
    reordered = list(reversed(FEATURE_NAMES))
    assert rules_scores(rows[:, ::-1], reordered, **RULES) == pytest.approx([2.0, 2.0, 0.1])
    with pytest.raises(ValueError, match="ip_count_1h"):
        rules_scores(np.delete(rows, COL["ip_count_1h"], axis=1), [n for n in FEATURE_NAMES if n != "ip_count_1h"], **RULES)


def test_gbt_trained_by_two_workers_beats_the_rules(gbt, data):
    _, y_train, X_valid, y_valid = data
    assert gbt.info["world_size"] == 2 and gbt.info["train_rows"] == len(y_train)
    assert gbt.info["scale_pos_weight"] == pytest.approx((len(y_train) - y_train.sum()) / y_train.sum())
    # Cut at the best round, whose PR-AUC the two workers computed is that of the whole validation set.
    assert gbt.booster.num_boosted_rounds() == gbt.info["best_iteration"] + 1
    booster = gbt.booster.copy()
    booster.set_param({"eval_metric": "aucpr"})
    evaluation = booster.eval(xgboost.DMatrix(X_valid, label=y_valid, feature_names=list(FEATURE_NAMES)), "valid")
    assert float(evaluation.split(":")[-1]) == pytest.approx(gbt.info["best_valid_aucpr"], abs=1e-9)
    gbt_ap = average_precision_score(y_valid, gbt.predict(X_valid))
    rules_ap = average_precision_score(y_valid, rules_scores(X_valid, FEATURE_NAMES, **RULES))
    assert gbt_ap > 5 * y_valid.mean()
    assert gbt_ap > rules_ap + 0.1, (gbt_ap, rules_ap)


def test_gbt_contributions_and_bias_sum_to_the_log_odds(gbt, data):
    X = data[2][:200]
    full = gbt.booster.predict(xgboost.DMatrix(X, feature_names=list(FEATURE_NAMES)), pred_contribs=True)
    contributions = gbt.contributions(X)
    assert contributions.shape == (200, len(FEATURE_NAMES))
    np.testing.assert_allclose(contributions, full[:, :-1])
    p = gbt.predict(X)
    np.testing.assert_allclose(contributions.sum(axis=1) + full[:, -1], np.log(p / (1 - p)), atol=1e-4)


def test_nn_loss_falls_and_it_beats_a_constant(nn, data):
    losses = nn.fit_result.losses
    assert len(losses) == 3 and losses[-1] < losses[0]
    _, _, X_valid, y_valid = data
    # A constant score's average precision is the fraud rate.
    assert average_precision_score(y_valid, nn.predict(X_valid)) > 3 * y_valid.mean()
    # Integrated gradients add up to the log-odds above the training mean's.
    with torch.no_grad():
        at_mean = nn.net(torch.zeros(1, len(FEATURE_NAMES))).item()
    gain = nn.margin(X_valid[:50]) - at_mean
    np.testing.assert_allclose(nn.contributions(X_valid[:50]).sum(axis=1), gain, atol=0.05 * np.abs(gain).max() + 0.05)


def test_bundle_round_trips_scores_exactly(model, data, tmp_path):
    X = data[2]
    bundle = bundle_of(model, review=0.3, decline=math.inf)
    folder = bundle.save(tmp_path / "bundle")
    loaded = FraudBundle.load(folder)
    assert loaded.kind == model.kind and loaded.feature_names == FEATURE_NAMES
    assert (loaded.review_threshold, loaded.decline_threshold) == (0.3, math.inf)
    assert loaded.metadata == {"run_date": "2024-05-01", "metrics": {"valid.pr_auc": 0.9}}
    np.testing.assert_array_equal(loaded.score(X), bundle.score(X))
    np.testing.assert_array_equal(loaded.model.contributions(X[:20]), model.contributions(X[:20]))
    assert '"decline": "inf"' in (folder / "bundle.json").read_text()


def test_the_rules_baseline_is_servable_when_it_wins(tmp_path):
    rows = np.zeros((2, len(FEATURE_NAMES)))
    rows[0, COL["amount"]], rows[0, COL["device_count_1h"]] = 150.0, 6
    rules = RulesModel(FEATURE_NAMES, **RULES)
    bundle = bundle_of(rules, review=1.0, decline=math.inf)
    loaded = FraudBundle.load(bundle.save(tmp_path / "bundle"))
    assert loaded.kind == "rules" and loaded.score(rows) == pytest.approx([2.0, 0.0])
    assert list(loaded.decide(loaded.score(rows))) == [REVIEW, APPROVE]
    # The reason is the rule that fired hardest: 6 payments from the device in an hour.
    assert loaded.reasons(rows[:1])[0][0] == ("device_count_1h", pytest.approx(2.0))
    with pytest.raises(ValueError, match="amount"):
        RulesModel([n for n in FEATURE_NAMES if n != "amount"], 100.0, 3)


def test_decide_at_hand_set_thresholds(gbt):
    scores = np.array([0.0, 0.29, 0.3, 0.5, 0.8, 0.99])
    assert bundle_of(gbt, 0.3, 0.8).decide(scores).tolist() == [APPROVE, APPROVE, REVIEW, REVIEW, DECLINE, DECLINE]
    assert bundle_of(gbt, 0.3, math.inf).decide(scores).tolist() == [APPROVE, APPROVE, REVIEW, REVIEW, REVIEW, REVIEW]
    with pytest.raises(ValueError, match="NaN"):
        bundle_of(gbt).decide([0.5, float("nan")])
    with pytest.raises(ValueError, match="below the review threshold"):
        bundle_of(gbt, 0.8, 0.3)


def test_reasons_name_the_planted_feature(model):
    bundle = bundle_of(model)
    burst = typical_row(device_count_1h=9)
    assert bundle.score(burst)[0] > 0.5
    reasons = bundle.reasons(burst, k=3)[0]
    assert reasons[0][0] == "device_count_1h"
    assert len(reasons) <= 3 and all(c > 0 for _, c in reasons)
    assert [c for _, c in reasons] == sorted((c for _, c in reasons), reverse=True)
    new_device = typical_row(new_device_for_user=1, amount_to_user_mean=7)
    assert {"new_device_for_user", "amount_to_user_mean"} <= {name for name, _ in bundle.reasons(new_device, k=3)[0]}
    # Only features that push the score up are reasons.
    every = bundle.reasons(typical_row(), k=len(FEATURE_NAMES))[0]
    assert len(every) < len(FEATURE_NAMES) and all(c > 0 for _, c in every)


def test_check_features_refuses_other_features(gbt):
    bundle = bundle_of(gbt)
    bundle.check_features(FEATURE_NAMES)
    with pytest.raises(FeatureMismatchError, match="missing \\['shipping_differs'\\]"):
        bundle.check_features(FEATURE_NAMES[:-1])
    with pytest.raises(FeatureMismatchError, match="another order"):
        bundle.check_features(tuple(reversed(FEATURE_NAMES)))
    with pytest.raises(FeatureMismatchError):
        FraudBundle(gbt, tuple(reversed(FEATURE_NAMES)), 0.3, 0.8, {})


def test_one_row_scores_fast(model, data):
    row = data[2][:1]
    model.predict(row)
    timings = []
    for _ in range(200):
        started = time.perf_counter()
        model.predict(row)
        timings.append(time.perf_counter() - started)
    assert np.median(timings) < 0.002
