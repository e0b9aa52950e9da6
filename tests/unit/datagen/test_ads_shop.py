"""The synthetic shop's ads: logged propensities of the shop's policy and planted click and conversion probabilities."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pajson
import pytest

from shoplake import columns as C
from shoplake.datagen.landing_writer import landing_path
from shoplake.datagen.shop.common import GROUND_TRUTH_FILE, ShopParams
from shoplake.datagen.synthetic import _Shop, generate_shop
from shoplake.ingest import landing as L

PARAMS = ShopParams(days=14, users=60, items=40, seed=5, sessions_per_user_day=2.0, ad_impressions_per_session=8.0)


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("ads_shop")
    generate_shop(root, PARAMS)
    truth = json.loads((root / GROUND_TRUTH_FILE).read_text())
    schema = pa.schema([(f.name, pa.string()) for f in L.AD_EVENTS.fields])
    frames = []
    for d in range(PARAMS.days):
        path = landing_path(root, L.AD_EVENTS.name, PARAMS.start + pd.Timedelta(days=d), "jsonl")
        frames.append(pajson.read_json(path, parse_options=pajson.ParseOptions(explicit_schema=schema)).to_pandas())
    ads = pd.concat(frames, ignore_index=True)
    imps = ads[ads[C.EVENT_TYPE] == "impression"].copy()
    clicked = set(ads.loc[ads[C.EVENT_TYPE] == "click", C.IMPRESSION_ID])
    converted = set(ads.loc[ads[C.EVENT_TYPE] == "conversion", C.IMPRESSION_ID])
    imps["click"] = imps[C.IMPRESSION_ID].isin(clicked)
    imps["conversion"] = imps[C.IMPRESSION_ID].isin(converted)
    true = np.array([truth["ads"]["impressions"][i] for i in imps[C.IMPRESSION_ID]])
    imps["p_click"], imps["p_convert"] = true[:, 0], true[:, 1]
    return truth, ads, imps


def test_the_policy_propensities_of_every_ad_sum_to_one_per_viewer():
    s = _Shop(PARAMS)
    pairs = np.arange(len(s.ad_item))
    for user in range(PARAMS.users):
        total = s._ad_propensity(np.full(len(pairs), user), pairs).sum()
        assert total == pytest.approx(1.0, abs=1e-9)


def test_every_event_logs_a_position_and_the_propensity_of_its_impression(shop):
    _, ads, imps = shop
    assert ads[C.POSITION].notna().all() and ads[C.PROPENSITY].notna().all()
    p = pd.to_numeric(ads[C.PROPENSITY])
    assert ((p > 0) & (p <= 1)).all()
    one = ads.groupby(C.IMPRESSION_ID)[[C.PROPENSITY, C.POSITION]].nunique()
    assert (one == 1).all().all()
    slots = json.loads(json.dumps(shop[0]["ads"]["slots_by_placement"]))
    pos = pd.to_numeric(imps[C.POSITION])
    assert (pos <= imps[C.PLACEMENT].map(slots)).all()


def test_logged_propensities_match_how_often_each_ad_is_shown(shop):
    # Inverse-propensity weights of the logged ads add up to the number of ads per viewer (in expectation).
    _, _, imps = shop
    s = _Shop(PARAMS)
    n_ads = len(s.ad_item)
    weights = 1.0 / pd.to_numeric(imps[C.PROPENSITY])
    assert weights.mean() == pytest.approx(n_ads, rel=0.1)


def test_true_probabilities_are_calibrated_against_the_outcomes(shop):
    _, _, imps = shop
    assert len(imps) > 5000
    assert imps["click"].mean() == pytest.approx(imps["p_click"].mean(), rel=0.1)
    clicks = imps[imps["click"]]
    assert len(clicks) > 200
    assert clicks["conversion"].mean() == pytest.approx(clicks["p_convert"].mean(), rel=0.25)
    high = imps["p_click"] > imps["p_click"].quantile(0.8)
    assert imps.loc[high, "click"].mean() > 2 * imps.loc[~high, "click"].mean()


def test_click_through_falls_with_position_and_follows_the_ad_text(shop):
    truth, _, imps = shop
    top = imps[imps[C.PLACEMENT] == "search_top"]
    pos = pd.to_numeric(top[C.POSITION])
    assert top.loc[pos == 1, "p_click"].mean() > top.loc[pos == 4, "p_click"].mean()
    assert top.loc[pos == 1, "click"].mean() > top.loc[pos == 4, "click"].mean()
    text = imps[C.ITEM_ID].map({i: v["text_ctr_multiplier"] for i, v in truth["ads"]["items"].items()})
    assert text.notna().all() and text.std() > 0.1
    appealing = text > text.median()
    assert imps.loc[appealing, "click"].mean() > imps.loc[~appealing, "click"].mean()


def test_conversion_after_a_click_falls_with_price(shop):
    truth, _, imps = shop
    ratio = imps[C.ITEM_ID].map({i: v["price_ratio"] for i, v in truth["ads"]["items"].items()})
    clicks = imps["click"]
    cheap, dear = clicks & (ratio < 0.8), clicks & (ratio > 1.25)
    assert imps.loc[cheap, "p_convert"].mean() > imps.loc[dear, "p_convert"].mean()
    assert imps.loc[cheap, "conversion"].mean() > imps.loc[dear, "conversion"].mean()


def test_the_truth_gives_the_probabilities_of_any_ad_shown_to_any_viewer(shop):
    from shoplake.datagen.shop.ads import true_ad_probabilities

    truth, _, imps = shop
    known = imps[imps[C.USER_ID].notna()].head(500)
    ctr, cvr = true_ad_probabilities(
        truth,
        known[C.USER_ID].tolist(),
        known[C.ITEM_ID].tolist(),
        known[C.PLACEMENT].tolist(),
        pd.to_numeric(known[C.POSITION]).to_numpy(),
    )
    assert ctr == pytest.approx(known["p_click"].to_numpy(), abs=1e-5) and cvr == pytest.approx(known["p_convert"].to_numpy(), abs=1e-5)
