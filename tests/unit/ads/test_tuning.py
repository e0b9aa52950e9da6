"""The ad models' settings chosen on validation with Ray Tune: trials report the validation ESMM loss, the best is trained."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from shoplake import columns as C
from shoplake.ads.data import CATEGORICAL, NUMERIC, AdData, Encoding
from shoplake.ads.models import DEEP_CTR, GBT, HISTORIC_CTR, DeepSettings, validation_losses
from shoplake.ads.tuning import GBT_ROUNDS_PER_STEP, esmm_log_loss, search_settings
from shoplake.train.tune import with_settings

OVERRIDES = ("ads.batch_size=256", "ads.lr=0.01", "ads.hidden=16", "ads.embedding_dim=4", "ads.text_dim=4", "ads.hash_buckets=4096")


def true_probabilities(text: np.ndarray, position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Click-through triples with the first text direction and falls with position; conversion follows the second."""
    return 0.04 * np.exp(1.1 * np.sign(text[:, 0])) * position**-0.5, np.where(text[:, 1] > 0, 0.35, 0.05)


def planted(n: int, seed: int) -> AdData:
    rng = np.random.default_rng(seed)
    texts = np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32)
    item, position = rng.integers(0, len(texts), n), rng.integers(1, 4, n)
    ctr, cvr = true_probabilities(texts[item], position)
    click = (rng.random(n) < ctr).astype(float)
    cats = {name: np.array(["x"] * n, dtype=object) for name in CATEGORICAL}
    cats[C.ITEM_ID], cats[C.POSITION] = np.array([f"i{k}" for k in item], dtype=object), position.astype(str).astype(object)
    cats[S_HOUR] = rng.integers(0, 24, n).astype(str).astype(object)  # noise the search may leave out
    day = np.full(n, dt.date(2024, 1, 1), dtype=object)
    return AdData(cats, np.full((n, len(NUMERIC)), 0.05), texts[item], click, click * (rng.random(n) < cvr), cats[C.PLACEMENT], day,
                  np.arange(n).astype(str))  # fmt: skip


S_HOUR = "hour"


@pytest.fixture(scope="module")
def splits():
    return planted(4_000, seed=1), planted(2_000, seed=2)


@pytest.mark.parametrize("model, overrides", [
    (GBT, ["ads.gbt_rounds=40", "ads.gbt_search={gbt_max_depth: [2, 4], gbt_eta: [0.1, 0.3]}"]),
    (DEEP_CTR, ["ads.epochs=3", "ads.deep_search={deep_fields: [null, [position, item_id]], embedding_dim: [2, 4]}"]),
])  # fmt: skip
def test_the_search_hands_the_best_validation_settings_to_the_final_fit(make_cfg, ray_local, splits, model, overrides):
    cfg = make_cfg(*OVERRIDES, "tuning.num_samples=3", "tuning.grace_period=1", *overrides)
    train, valid = splits
    tuned, searched = search_settings(cfg, model, train, valid, Encoding.fit(train), f"search-{model}")
    assert len(searched.trials) == 3 and all(t.error is None for t in searched.trials)
    assert searched.best.best_score == min(t.best_score for t in searched.trials)
    # The planted probabilities set the floor no trial can go far below.
    ctr, cvr = true_probabilities(valid.text, valid.cats["position"].astype(int))
    assert searched.best.best_score > 0.95 * esmm_log_loss(valid.click, valid.converted, ctr, cvr)
    if model == GBT:
        assert searched.max_iterations == 40 // GBT_ROUNDS_PER_STEP
        assert tuned.ads.gbt_max_depth == searched.best.settings["gbt_max_depth"] in (2, 4)
        assert tuned.ads.gbt_rounds == searched.best.best_iteration * GBT_ROUNDS_PER_STEP
    else:
        assert tuned.ads.embedding_dim == searched.best.settings["embedding_dim"] in (2, 4)
        assert tuned.ads.deep_fields == searched.best.settings["deep_fields"]
        # The best epoch becomes the final fit's epochs.
        assert tuned.ads.epochs == searched.best.best_iteration <= 3


def test_without_a_search_space_the_configuration_is_used_as_it_is(make_cfg, splits):
    cfg = make_cfg("ads.gbt_search={}", "ads.deep_search={}")
    train, valid = splits
    encoding = Encoding.fit(train)
    for model in (GBT, DEEP_CTR, HISTORIC_CTR):
        assert search_settings(cfg, model, train, valid, encoding, "none") == (cfg, None)


def test_the_deep_model_reads_only_the_fields_and_features_it_is_given(make_cfg, splits):
    cfg = make_cfg(*OVERRIDES, "ads.epochs=2", "ads.deep_fields=[position, item_id]", "ads.deep_numeric=[item_cvr]")
    train, valid = splits
    encoding = Encoding.fit(train)
    settings = DeepSettings.of(cfg.ads, encoding, train.text.shape[1])
    codes, numeric, _ = settings.inputs(encoding, valid)
    assert settings.fields == ("position", "item_id") and codes.shape == (len(valid), 2) and numeric.shape == (len(valid), 1)
    losses = list(validation_losses(cfg, train, valid, encoding))
    assert len(losses) == 2 and losses[1] < losses[0]
    with pytest.raises(ValueError, match="unknown"):
        DeepSettings.of(with_settings(cfg, "ads", {"deep_fields": ["colour"]}).ads, encoding, 8)
