"""The fraud models' settings chosen on validation with Ray Tune: trials report validation PR-AUC, the best settings are trained."""

from __future__ import annotations

import numpy as np
import pytest

from shoplake.fraud.metrics import average_precision
from shoplake.fraud.models.base import GBT, RULES, TABULAR_NN
from shoplake.fraud.tuning import GBT_ROUNDS_PER_STEP, search_settings

NAMES = ("signal", "noise_a", "noise_b")


def payments(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fraud is rare and shows in ``signal`` (and nowhere else)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.1).astype(np.int64)
    X = rng.normal(size=(n, 3))
    X[:, 0] += 4.0 * y
    return X, y


@pytest.mark.parametrize("model, overrides", [
    (GBT, ["fraud.gbt_rounds=40", "fraud.gbt_search={gbt_max_depth: [2, 4], gbt_eta: {loguniform: [0.05, 0.3]}}"]),
    (TABULAR_NN, ["fraud.nn_epochs=3", "fraud.nn_search={nn_lr: {loguniform: [0.001, 0.01]}, nn_hidden: [8, 16]}"]),
])  # fmt: skip
def test_the_search_hands_the_best_validation_settings_to_the_final_fit(make_cfg, ray_local, model, overrides):
    cfg = make_cfg("tuning.num_samples=3", "tuning.grace_period=1", *overrides)
    X_train, y_train = payments(600, 1)
    X_valid, y_valid = payments(300, 2)
    tuned, searched = search_settings(cfg, model, X_train, y_train, X_valid, y_valid, NAMES, f"search-{model}")
    assert len(searched.trials) == 3 and all(t.error is None for t in searched.trials)
    # A single feature separates fraud: the best trial comes close to scoring by that feature alone.
    assert searched.best.best_score > 0.9 * average_precision(y_valid, X_valid[:, 0])
    assert searched.best.best_score == max(t.best_score for t in searched.trials)
    if model == GBT:
        assert searched.max_iterations == 40 // GBT_ROUNDS_PER_STEP
        assert tuned.fraud.gbt_max_depth == searched.best.settings["gbt_max_depth"] in (2, 4)
        assert 0.05 <= tuned.fraud.gbt_eta <= 0.3
    else:
        assert tuned.fraud.nn_hidden == searched.best.settings["nn_hidden"] in (8, 16)
        # The best epoch becomes the final fit's epochs.
        assert tuned.fraud.nn_epochs == searched.best.best_iteration <= 3


def test_without_a_search_space_the_configuration_is_used_as_it_is(make_cfg):
    cfg = make_cfg("fraud.gbt_search={}")
    X, y = payments(50, 3)
    assert search_settings(cfg, GBT, X, y, X, y, NAMES, "none") == (cfg, None)
    assert search_settings(cfg, RULES, X, y, X, y, NAMES, "none") == (cfg, None)
