"""The ad models on planted impressions: the ESMM loss, a two-worker Ray Train run, round trips, new ads scored by their text."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import torch

from shoplake import columns as C
from shoplake.ads import metrics as M
from shoplake.ads import schemas as S
from shoplake.ads.bundle import AdsBundle
from shoplake.ads.data import CATEGORICAL, NUMERIC, AdData, Encoding
from shoplake.ads.models import GBTModel, HistoricCTRModel, LogisticModel, esmm_loss, load_model, train_deep_ctr
from shoplake.config import load_config

TEXT_DIM, N_ITEMS = 8, 40
PLACEMENTS = ("search_top", "home_banner", "product_page", "email")
OVERRIDES = ("ads.epochs=6", "ads.batch_size=256", "ads.lr=0.01", "ads.hidden=16", "ads.embedding_dim=4", "ads.text_dim=4",
             "ads.gbt_rounds=30", "ads.hash_buckets=4096")  # fmt: skip


def item_texts(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    text = rng.normal(size=(N_ITEMS, TEXT_DIM)).astype(np.float32)
    return text / np.linalg.norm(text, axis=1, keepdims=True)


def true_probabilities(text: np.ndarray, position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Click-through doubles with the first text direction and falls with position; conversion follows the second."""
    ctr = 0.06 * np.exp(1.2 * np.sign(text[:, 0])) * position**-0.5
    cvr = np.where(text[:, 1] > 0, 0.35, 0.05)
    return np.minimum(ctr, 0.9), cvr


def planted(n: int, seed: int, items: np.ndarray | None = None, texts: np.ndarray | None = None) -> AdData:
    rng = np.random.default_rng(seed)
    texts = item_texts() if texts is None else texts
    item = rng.integers(0, len(texts), n) if items is None else items
    position = rng.integers(1, 4, n)
    ctr, cvr = true_probabilities(texts[item], position)
    click = (rng.random(n) < ctr).astype(float)
    conversion = click * (rng.random(n) < cvr)
    num = np.zeros((n, len(NUMERIC)))
    num[:, NUMERIC.index(S.PLACEMENT_ITEM_CTR)] = 0.03 + 0.01 * rng.random(n)
    num[:, NUMERIC.index(S.ITEM_CVR)] = 0.1 + 0.01 * rng.random(n)
    cats = {name: np.array(["x"] * n, dtype=object) for name in CATEGORICAL}
    cats[C.ITEM_ID] = np.array([f"i{k}" for k in item], dtype=object)
    cats[C.POSITION] = position.astype(str).astype(object)
    cats[C.PLACEMENT] = np.array(PLACEMENTS, dtype=object)[rng.integers(0, 4, n)]
    day = np.array([dt.date(2024, 1, 1) + dt.timedelta(days=int(k)) for k in np.sort(rng.integers(0, 20, n))])
    return AdData(cats, num, texts[item], click, conversion, cats[C.PLACEMENT].copy(), day, np.array([f"m{k}" for k in range(n)]))


@pytest.fixture(scope="module")
def ads_cfg(tmp_path_factory, ray_local):
    from helpers import TEST_OVERRIDES

    root = tmp_path_factory.mktemp("ads")
    return load_config("local", [*TEST_OVERRIDES, f"lake.root={root}/lake", f"runs_dir={root}/runs", *OVERRIDES])


@pytest.fixture(scope="module")
def train_data() -> AdData:
    return planted(6_000, seed=1)


@pytest.fixture(scope="module")
def encoding(train_data) -> Encoding:
    return Encoding.fit(train_data)


@pytest.fixture(scope="module")
def deep(ads_cfg, train_data, encoding):
    return train_deep_ctr(ads_cfg, train_data, encoding, "ads-deep")


def test_esmm_loss_is_click_loss_plus_conversion_loss_over_all_impressions():
    ctr, cvr = torch.tensor([0.0, 1.0]), torch.tensor([2.0, -1.0])
    click, converted = torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0])
    p_ctr, p_cvr = torch.sigmoid(ctr), torch.sigmoid(cvr)
    expected = (
        -(torch.log(p_ctr[0]) + torch.log(1 - p_ctr[1])) / 2 - (torch.log(p_ctr[0] * p_cvr[0]) + torch.log(1 - p_ctr[1] * p_cvr[1])) / 2
    )
    assert float(esmm_loss(ctr, cvr, click, converted)) == pytest.approx(float(expected), rel=1e-6)
    # The weights: the conversion term scaled, and the conversion-after-click term over the clicked impression alone.
    conversion = -(torch.log(p_ctr[0] * p_cvr[0]) + torch.log(1 - p_ctr[1] * p_cvr[1])) / 2
    clicked = -torch.log(p_cvr[0])
    weighted = float(esmm_loss(ctr, cvr, click, converted, conversion_weight=3.0, clicked_weight=0.5))
    assert weighted == pytest.approx(float(expected + 2.0 * conversion + 0.5 * clicked), rel=1e-6)
    assert float(esmm_loss(ctr, cvr, torch.zeros(2), torch.zeros(2), clicked_weight=0.5)) == pytest.approx(
        float(esmm_loss(ctr, cvr, torch.zeros(2), torch.zeros(2))), rel=1e-6
    )


def test_the_main_model_trained_by_two_workers_lowers_its_loss_and_learns_the_planted_rates(deep, ads_cfg):
    model, losses = deep
    assert ads_cfg.ray.num_workers == 2 and len(losses) == ads_cfg.ads.epochs
    assert losses[-1] < losses[0]
    test = planted(4_000, seed=2)
    p_ctr, p_cvr = model.predict(test)
    rate = np.full(len(test), test.converted.mean())
    assert M.log_loss(test.converted, p_ctr * p_cvr) < M.log_loss(test.converted, rate)
    assert M.roc_auc(test.converted, p_ctr * p_cvr) > 0.7 and M.roc_auc(test.click, p_ctr) > 0.65


def test_a_new_ad_is_scored_from_its_text(deep):
    model, _ = deep
    fresh = item_texts(seed=9)  # items never trained on: unseen ids, new texts
    appealing, dull = np.flatnonzero(fresh[:, 0] > 0.3), np.flatnonzero(fresh[:, 0] < -0.3)
    rng = np.random.default_rng(3)
    good = np.arange(2_000) % 2 == 0
    items = np.where(good, rng.choice(appealing, 2_000), rng.choice(dull, 2_000))
    data = planted(2_000, seed=3, items=items, texts=fresh)
    data.cats[C.ITEM_ID] = np.array([f"new{k}" for k in items], dtype=object)
    p_ctr, _ = model.predict(data)
    assert p_ctr[good].mean() > 1.5 * p_ctr[~good].mean()


def test_every_model_round_trips_its_scores(deep, ads_cfg, train_data, encoding, tmp_path):
    cfg = ads_cfg.ads
    models = [
        HistoricCTRModel(),
        LogisticModel.fit(train_data, encoding, cfg.hash_buckets, cfg.logistic_c),
        GBTModel.fit(train_data, encoding, cfg.gbt_rounds, cfg.gbt_max_depth, cfg.gbt_eta),
        deep[0],
    ]
    test = planted(500, seed=4)
    for model in models:
        again = load_model(model.save(tmp_path / model.kind))
        for a, b in zip(model.predict(test), again.predict(test)):
            assert np.allclose(a, b, atol=1e-9), model.kind
        ctr, cvr = model.predict(test)
        assert ((ctr > 0) & (ctr < 1) & (cvr > 0) & (cvr < 1)).all()


def test_the_bundle_scores_calibrated_and_consistent_probabilities(deep, tmp_path):
    model, _ = deep
    valid, test = planted(3_000, seed=5), planted(500, seed=6)
    raw_ctr, raw_cvr = model.predict(valid)
    bundle = AdsBundle(
        model, M.fit_calibrator(valid.click, raw_ctr, M.ISOTONIC), M.fit_calibrator(valid.converted, raw_ctr * raw_cvr, M.ISOTONIC),
        {f"i{k}": v for k, v in enumerate(item_texts())}, {"run_date": "2024-01-21", "model_name": model.kind},
    )  # fmt: skip
    again = AdsBundle.load(bundle.save(tmp_path / "bundle"))
    a, b = bundle.score(test), again.score(test)
    assert np.allclose(a.p_ctcvr, b.p_ctcvr) and np.allclose(a.p_ctr, b.p_ctr)
    assert np.allclose(a.p_ctr * a.p_cvr, a.p_ctcvr) and (a.p_ctcvr <= a.p_ctr).all()
    assert set(again.item_text) == set(bundle.item_text) and again.metadata["run_date"] == "2024-01-21"
