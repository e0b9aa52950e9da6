"""serving.ad_scores and ``POST /ads/rank`` over a hand-made ad state and a small registered model.

The state tables (gold.ad_state, gold.ad_viewers, gold.ad_items) are written directly,
so no Spark runs here (their point-in-time rules are tested in tests/unit/ads/test_state.py);
the model is an XGBoost bundle fitted on random labels in a second. Scores are written
once by Ray Data and the endpoint runs on Ray Serve: it must give the batch rows, first
without a plan, then with a hand-made serving.ad_plan of the run date that reorders them.
"""

from __future__ import annotations

import datetime as dt
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from helpers import TEST_OVERRIDES, get_json, post_json
from shoplake import columns as C
from shoplake.ads import metrics as M
from shoplake.ads import schemas as S
from shoplake.ads.bundle import AdsBundle
from shoplake.ads.data import NUMERIC, AdData, Encoding
from shoplake.ads.models import DeepCTRModel, DeepCTRNet, DeepSettings, GBTModel
from shoplake.ads.score import score_ads
from shoplake.ads.scoring import AdState
from shoplake.ads.serve import AdRanker, RankIn
from shoplake.config import load_config
from shoplake.lake import Lake
from shoplake.registry import log_model

D = dt.date(2024, 3, 11)
PLACEMENTS = ("email", "search_top")
#: (item, campaign): i1 is advertised by two campaigns.
ADS = (("i1", "c1"), ("i2", "c1"), ("i3", "c2"), ("i4", "c3"), ("i1", "c3"))
#: item -> (category, price); i4 is not in the catalogue.
ITEMS = {"i1": ("kitchen", 12.0), "i2": ("kitchen", 45.0), "i3": ("garden", 80.0), "i4": (None, None)}
VIEWERS = [f"u{k}" for k in range(8)]
TEXT_DIM = 8


def state_tables(seed: int = 3) -> tuple[pa.Table, pa.Table, pa.Table]:
    """Random but plausible D partitions of gold.ad_state, gold.ad_viewers and gold.ad_items."""
    rng = np.random.default_rng(seed)
    cpc = {"c1": 0.4, "c2": 0.9, "c3": 0.25}
    rows = []
    for placement in PLACEMENTS:
        for item, campaign in ADS:
            category, price = ITEMS[item]
            rows.append({
                C.PLACEMENT: placement, C.ITEM_ID: item, C.CAMPAIGN_ID: campaign, C.CATEGORY: category,
                C.PRICE_BAND: -1 if price is None else int(price > 20) + int(price > 50),
                S.ITEM_IMPRESSIONS: float(rng.integers(0, 500)), S.ITEM_CTR: rng.uniform(0.01, 0.1), S.ITEM_CVR: rng.uniform(0.05, 0.3),
                S.CAMPAIGN_CTR: rng.uniform(0.01, 0.1), S.CAMPAIGN_CVR: rng.uniform(0.05, 0.3), S.PLACEMENT_CTR: rng.uniform(0.01, 0.1),
                S.PLACEMENT_CVR: rng.uniform(0.05, 0.3), S.PLACEMENT_ITEM_CTR: rng.uniform(0.01, 0.1),
                S.ITEM_VIEWS: float(rng.integers(0, 300)), C.PRICE: price or 0.0, S.CPC: cpc[campaign], C.RUN_DATE: D,
            })  # fmt: skip
    viewers = [{C.USER_ID: None, S.USER_AD_IMPRESSIONS: 0.0, S.USER_CTR: 0.03, S.USER_EVENTS: 0.0, S.CATEGORIES: [],
                S.CATEGORY_EVENTS: [], C.RUN_DATE: D}]  # fmt: skip
    for user in VIEWERS:
        imps = float(rng.integers(0, 60))
        kitchen, garden, other = (float(x) for x in rng.integers(0, 20, 3))
        viewers.append({
            C.USER_ID: user, S.USER_AD_IMPRESSIONS: imps, S.USER_CTR: (rng.integers(0, 5) + 3.0) / (imps + 100.0),
            S.USER_EVENTS: kitchen + garden + other, S.CATEGORIES: ["garden", "kitchen", "toys"],
            S.CATEGORY_EVENTS: [garden, kitchen, other], C.RUN_DATE: D,
        })  # fmt: skip
    items = [{C.ITEM_ID: i, C.CATEGORY: c, C.PRICE: p, C.PRICE_BAND: -1 if p is None else 1, S.AD_TEXT: f"{i} text", C.RUN_DATE: D}
             for i, (c, p) in ITEMS.items()]  # fmt: skip
    return tuple(pa.Table.from_pylist(r, schema=spec.arrow_schema()) for r, spec in ((rows, S.AD_STATE), (viewers, S.AD_VIEWERS),
                                                                                       (items, S.AD_ITEMS)))  # fmt: skip


def training_data(state: AdState, seed: int = 5) -> AdData:
    """Every viewer's impressions of every ad in every placement, five times over, with random clicks and conversions."""
    parts = [state.data(v, p) for v in range(len(state.viewer_ids)) for p in PLACEMENTS] * 5
    rng = np.random.default_rng(seed)
    n = sum(len(p) for p in parts)
    click = (rng.random(n) < 0.3).astype(np.float64)
    return AdData(
        {k: np.concatenate([p.cats[k] for p in parts]) for k in parts[0].cats}, np.vstack([p.num for p in parts]),
        np.vstack([p.text for p in parts]), click, click * (rng.random(n) < 0.4), np.concatenate([p.placement for p in parts]),
        np.concatenate([p.day for p in parts]), np.concatenate([p.ids for p in parts]),
    )  # fmt: skip


def item_text(items, seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {i: rng.normal(size=TEXT_DIM).astype(np.float32) for i in items}


def register(cfg, model, data: AdData, text: dict, tmp) -> str:
    """Calibrate ``model`` on ``data``, save and register it as the serving version of ``ads.registered_model``."""
    ctr, cvr = model.predict(data)
    bundle = AdsBundle(model, M.fit_calibrator(data.click, ctr, "temperature"), M.fit_calibrator(data.converted, ctr * cvr, "isotonic"),
                       text, {"model_name": model.kind, "run_date": D.isoformat()})  # fmt: skip
    folder = bundle.save(tmp / f"bundle-{model.kind}")
    info = log_model(cfg, folder, model_name=model.kind, params={}, metrics={}, table_versions={}, run_date=D,
                     registered_model=cfg.ads.registered_model)  # fmt: skip
    return info.version


@pytest.fixture(scope="module")
def shop(tmp_path_factory, ray_local, empty_registry):
    """A lake with D's ad state, a registered XGBoost bundle and D's scores: ``(cfg, lake, scored, state)``."""
    root = tmp_path_factory.mktemp("ad-scores")
    (root / "lake" / "_mlflow").mkdir(parents=True)
    shutil.copy(empty_registry, root / "lake" / "_mlflow" / "mlflow.db")
    cfg = load_config("local", [*TEST_OVERRIDES, f"lake.root={root}/lake", f"runs_dir={root}/runs", "lake.engine=delta-rs"])
    lake = Lake(cfg)
    tables = state_tables()
    for table, spec in zip(tables, (S.AD_STATE, S.AD_VIEWERS, S.AD_ITEMS)):
        lake.ray_write(ray_local.data.from_arrow(table), spec, mode="replace", run_dates=[D])
    text = item_text(ITEMS)
    state = AdState(tables[0], tables[1], text, D)
    data = training_data(state)
    register(cfg, GBTModel.fit(data, Encoding.fit(data), rounds=20, max_depth=3, eta=0.3), data, text, root)
    return cfg, lake, score_ads(cfg, lake, D), state


def test_scores_hold_every_viewer_ad_and_placement_ranked_by_expected_value(shop):
    cfg, lake, scored, state = shop
    rows = lake.to_arrow(S.AD_SCORES, run_date=D)
    assert rows.schema == S.AD_SCORES.arrow_schema()
    assert scored.rows == rows.num_rows == (len(VIEWERS) + 1) * len(PLACEMENTS) * len(ADS)
    # No serving.ad_plan yet: the ads are ranked by expected value.
    assert scored.plan_run_date is None and set(rows[S.PLAN_RUN_DATE].to_pylist()) == {None}
    assert set(rows[S.BUDGET_MULTIPLIER].to_pylist()) == {None} and rows[S.RANKING_VALUE].equals(rows[S.EXPECTED_VALUE])
    assert (scored.viewers, scored.placements, scored.ads, scored.new_ads) == (len(VIEWERS) + 1, 2, 4, 0)
    assert set(rows[C.USER_ID].to_pylist()) == {None, *VIEWERS}
    assert pc.all(pc.equal(rows[C.MODEL_VERSION], scored.model_version)).as_py() and set(rows[C.MODEL_NAME].to_pylist()) == {"gbt"}
    price = {(r[C.PLACEMENT], r[C.ITEM_ID], r[C.CAMPAIGN_ID]): (r[C.PRICE], r[S.CPC]) for r in state_tables()[0].to_pylist()}
    groups: dict = {}
    for r in rows.to_pylist():
        p, cpc = price[(r[C.PLACEMENT], r[C.ITEM_ID], r[C.CAMPAIGN_ID])]
        assert r[S.EXPECTED_VALUE] == pytest.approx(r[S.P_CTCVR] * p - r[S.P_CTR] * cpc, abs=1e-12)
        assert 0 < r[S.P_CTCVR] <= r[S.P_CTR] < 1 and r[S.P_CVR] == pytest.approx(r[S.P_CTCVR] / r[S.P_CTR])
        groups.setdefault((r[C.USER_ID], r[C.PLACEMENT]), []).append((r[S.RANK], r[S.EXPECTED_VALUE]))
    for ranked in groups.values():
        ranked.sort()
        assert [k for k, _ in ranked] == list(range(1, len(ADS) + 1))
        assert [v for _, v in ranked] == sorted((v for _, v in ranked), reverse=True)
    # The viewers differ, so their scores do.
    assert len({round(v, 12) for v in rows[S.P_CTR].to_pylist()}) > len(ADS) * len(PLACEMENTS)


def test_rescoring_replaces_the_run_date(shop):
    cfg, lake, scored, _ = shop
    keys = [(c, "ascending") for c in (C.PLACEMENT, C.ITEM_ID, C.CAMPAIGN_ID)]
    before = lake.to_arrow(S.AD_SCORES, run_date=D).sort_by([(C.USER_ID, "ascending"), *keys])
    again = score_ads(cfg, lake, D)
    after = lake.to_arrow(S.AD_SCORES, run_date=D).sort_by([(C.USER_ID, "ascending"), *keys])
    assert again.version == scored.version + 1 and lake.row_count(S.AD_SCORES) == before.num_rows
    same = [c for c in S.AD_SCORES.column_names if c != C.SCORED_AT]
    assert after.select(same).equals(before.select(same))
    assert pc.min(after[C.SCORED_AT]).as_py() > pc.max(before[C.SCORED_AT]).as_py()


def test_the_nightly_step_warns_instead_of_failing_without_a_model(reg_cfg):
    from rich.console import Console
    from rich.progress import Progress

    from shoplake.pipeline import StepContext, get_step

    console = Console(record=True, width=300)
    get_step("score-ads").nightly(StepContext(reg_cfg, Lake(reg_cfg), D, [D], Progress(console=console), console))
    said = console.export_text()
    assert f"no ad scores for {D}" in said and "shoplake-ads" in said


@pytest.fixture(scope="module")
def served(shop, serve_url, tmp_path_factory):
    from ray import serve

    from shoplake.serve.app import build_app

    cfg, _, _, _ = shop
    # Tables checked at every request, so a new plan is served at once.
    serve.run(build_app({"env": "local", "overrides": [f"lake.root={cfg.lake.root}", "lake.engine=delta-rs"], "table_check_s": 0}),
              name="ads", route_prefix="/")  # fmt: skip
    empty = tmp_path_factory.mktemp("ads-empty")
    serve.run(build_app({"env": "local", "overrides": [f"lake.root={empty}/lake"]}), name="ads-empty", route_prefix="/empty")
    return serve_url


def ad_key(row: dict) -> tuple:
    return row[C.USER_ID], row[C.PLACEMENT], row[C.ITEM_ID], row[C.CAMPAIGN_ID]


def batch_rows(lake) -> dict:
    """D's serving.ad_scores rows by viewer, placement, item and campaign."""
    return {ad_key(r): r for r in lake.to_arrow(S.AD_SCORES, run_date=D).to_pylist()}


def assert_the_endpoint_gives_the_batch_scores(url: str, lake) -> None:
    batch = batch_rows(lake)
    for user, as_user in (("u0", "u0"), ("u5", "u5"), (None, None), ("someone-new", None)):
        for placement in PLACEMENTS:
            status, answer = post_json(f"{url}/ads/rank", {"user_id": user, "placement": placement, "k": 50})
            assert status == 200, answer
            assert answer["known_viewer"] is (as_user is not None) and answer["run_date"] == D.isoformat()
            assert len(answer["ads"]) == len(ADS)
            for rank, ad in enumerate(answer["ads"], start=1):
                row = batch[(as_user, placement, ad["item_id"], ad["campaign_id"])]
                for name in (S.P_CTR, S.P_CVR, S.P_CTCVR, S.EXPECTED_VALUE, S.RANKING_VALUE):
                    assert ad[name] == pytest.approx(row[name], abs=1e-9)
                assert ad[S.BUDGET_MULTIPLIER] == row[S.BUDGET_MULTIPLIER] and row[S.RANK] == rank
                plan_date = row[S.PLAN_RUN_DATE]
                assert answer[S.PLAN_RUN_DATE] == (plan_date.isoformat() if plan_date is not None else None)


def test_the_endpoint_gives_the_batch_scores(shop, served):
    _, lake, _, _ = shop
    assert_the_endpoint_gives_the_batch_scores(served, lake)


def plan_rows(multipliers: dict[str, float]) -> pa.Table:
    """A serving.ad_plan of D with these budget multipliers (one row per campaign and placement)."""
    at = dt.datetime(2024, 3, 11, 1, tzinfo=dt.timezone.utc)
    rows = [
        {
            C.CAMPAIGN_ID: campaign, C.PLACEMENT: placement, S.PLAN_IMPRESSIONS: 100.0, S.PLAN_CLICKS: 3.0, S.PLAN_CONVERSIONS: 0.5,
            S.PLAN_SPEND: 1.5, S.PLAN_VALUE: 20.0, S.PLAN_ROAS: 20.0 / 1.5, S.DAILY_BUDGET: 1.5, S.BUDGET_MULTIPLIER: multiplier,
            S.EXPLORATION: 0.05, S.MAX_RATIO: None, C.MODEL_NAME: "gbt", C.MODEL_VERSION: "1", S.PLANNED_AT: at, C.RUN_DATE: D,
        }
        for campaign, multiplier in multipliers.items()
        for placement in PLACEMENTS
    ]  # fmt: skip
    return pa.Table.from_pylist(rows, schema=S.AD_PLAN.arrow_schema())


def test_a_plan_that_reorders_the_ads_reorders_the_batch_and_the_endpoint_alike(shop, served, ray_local):
    cfg, lake, _, _ = shop
    before = batch_rows(lake)
    cpc = {r[C.CAMPAIGN_ID]: r[S.CPC] for r in state_tables()[0].to_pylist()}
    # u0's best ad in email, and the best one below it of another campaign: a multiplier on the first's campaign that
    # raises its cost past the gap puts it below the second.
    ranked = sorted((r for (u, p, _, _), r in before.items() if (u, p) == ("u0", "email")), key=lambda r: r[S.RANK])
    top = ranked[0]
    other = next(r for r in ranked[1:] if r[C.CAMPAIGN_ID] != top[C.CAMPAIGN_ID])
    cost = top[S.P_CTR] * cpc[top[C.CAMPAIGN_ID]]
    multiplier = 2 * (top[S.EXPECTED_VALUE] - other[S.EXPECTED_VALUE]) / cost + 0.1
    # The third campaign has no row: its ads keep their expected value.
    lake.ray_write(ray_local.data.from_arrow(plan_rows({top[C.CAMPAIGN_ID]: multiplier, other[C.CAMPAIGN_ID]: 0.0})), S.AD_PLAN,
                   mode="replace", run_dates=[D])  # fmt: skip
    rescored = score_ads(cfg, lake, D)
    assert rescored.plan_run_date == D
    after = batch_rows(lake)
    moved, kept = after[ad_key(top)], after[ad_key(other)]
    assert moved[S.RANK] > kept[S.RANK] and kept[S.RANK] <= other[S.RANK]
    assert moved[S.RANKING_VALUE] == pytest.approx(top[S.EXPECTED_VALUE] - multiplier * cost, rel=1e-9)
    for k, row in after.items():
        assert row[S.EXPECTED_VALUE] == pytest.approx(before[k][S.EXPECTED_VALUE], abs=1e-12) and row[S.PLAN_RUN_DATE] == D
        if row[C.CAMPAIGN_ID] not in (top[C.CAMPAIGN_ID], other[C.CAMPAIGN_ID]):
            assert row[S.BUDGET_MULTIPLIER] is None and row[S.RANKING_VALUE] == row[S.EXPECTED_VALUE]
    # The endpoint picks the new plan up and ranks as the batch does.
    assert_the_endpoint_gives_the_batch_scores(served, lake)
    status, answer = post_json(f"{served}/ads/rank", {"user_id": "u0", "placement": "email", "k": 50})
    order = [(a["item_id"], a["campaign_id"]) for a in answer["ads"]]
    assert order.index((top[C.ITEM_ID], top[C.CAMPAIGN_ID])) > order.index((other[C.ITEM_ID], other[C.CAMPAIGN_ID]))
    assert get_json(f"{served}/health")[1]["ads"][S.PLAN_RUN_DATE] == D.isoformat()


def test_health_says_what_is_served(shop, served):
    _, _, scored, _ = shop
    status, health = get_json(f"{served}/health")
    assert status == 200 and health["ads"]["loaded"] is True
    assert (health["ads"]["version"], health["ads"]["kind"], health["ads"]["run_date"]) == (scored.model_version, "gbt", D.isoformat())
    assert health["ads"]["placements"] == list(PLACEMENTS) and health["ads"]["viewers"] == len(VIEWERS) + 1
    status, health = get_json(f"{served}/empty/health")
    assert health["ads"]["loaded"] is False and "no ads model is loaded" in health["ads"]["detail"]


def test_candidates_k_and_reasons(shop, served):
    _, lake, _, _ = shop
    status, answer = post_json(f"{served}/ads/rank", {"user_id": "u3", "placement": "email", "candidates": ["i1", "i3", "i1"], "k": 2})
    assert status == 200, answer
    ads = answer["ads"]
    assert len(ads) == 2 and {a["item_id"] for a in ads} <= {"i1", "i3"}
    assert ads[0][S.RANKING_VALUE] >= ads[1][S.RANKING_VALUE]
    default = post_json(f"{served}/ads/rank", {"placement": "search_top"})[1]["ads"]
    assert len(default) == len(ADS)  # ads.rank_k (10) is more than the state's ads
    for ad in ads + default:
        contributions = [r["contribution"] for r in ad["reasons"]]
        assert len(contributions) <= 3 and all(v > 0 for v in contributions) and contributions == sorted(contributions, reverse=True)
        assert {r["feature"] for r in ad["reasons"]} <= set(NUMERIC)
    # The unknown viewer is the reference of the viewer's features: none of them is a reason.
    assert not {r["feature"] for a in default for r in a["reasons"]} & set(S.VIEWER_FEATURES)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"placement": "homepage"}, ["field placement", "'homepage'", "email, search_top"]),
        ({"placement": "email", "candidates": ["i1", "i9"]}, ["field candidates", "'i9'"]),
        ({"placement": "email", "candidates": "i1"}, ["field candidates"]),
        ({"placement": "email", "candidates": []}, ["field candidates", "at least 1"]),
        ({"placement": "email", "k": "many"}, ["field k", "'many'"]),
        ({"placement": "email", "k": 0}, ["field k"]),
        ({"placement": "email", "user_id": 7}, ["field user_id"]),
        ({"placement": "email", "hour": 24}, ["field hour"]),
        ({"user_id": "u1"}, ["field placement is required"]),
        ({"placement": "email", "budget": 3}, ["field budget is not a known field"]),
    ],
)
def test_bad_requests_get_422_naming_the_field(served, body, words):
    status, answer = post_json(f"{served}/ads/rank", body)
    assert status == 422, answer
    for word in words:
        assert word in answer["detail"]


def test_query_parameters_are_refused_and_no_model_is_503(served):
    status, answer = post_json(f"{served}/ads/rank?debug=1", {"placement": "email"})
    assert status == 400 and "debug" in answer["detail"]
    status, answer = post_json(f"{served}/empty/ads/rank", {"placement": "email"})
    assert status == 503 and "ad ranking is not available" in answer["detail"]


def test_a_text_model_scores_a_new_ad_from_its_text_in_batch_and_online(shop, tmp_path):
    import torch

    base, lake, _, state = shop
    cfg = load_config("local", [*TEST_OVERRIDES, f"lake.root={base.lake.root}", f"runs_dir={tmp_path}", "lake.engine=delta-rs",
                                "ads.registered_model=shoplake-ads-text"])  # fmt: skip
    data = training_data(state)
    encoding = Encoding.fit(data)
    torch.manual_seed(0)
    settings = DeepSettings(tuple(encoding.sizes()), len(NUMERIC), TEXT_DIM, 4, 4, 1, 8)
    known = item_text(["i1", "i2", "i3"])  # i4 is new to the model
    register(cfg, DeepCTRModel(encoding, settings, DeepCTRNet(settings)), data, known, tmp_path)
    encoded: list[list] = []

    def encode(texts):
        encoded.append(list(texts))
        return np.stack([np.full(TEXT_DIM, len(t) / 10, dtype=np.float32) for t in texts])

    scored = score_ads(cfg, lake, D, encode=encode)
    ranker = AdRanker(cfg, lake, encode=encode)
    assert scored.new_ads == 1 and encoded == [["i4 text"], ["i4 text"]]
    email = ranker.served.state.placements["email"]
    assert np.allclose(email.text[email.index["i4"][0]], 0.7)  # len("i4 text") / 10
    batch = {(r[C.USER_ID], r[C.PLACEMENT], r[C.ITEM_ID], r[C.CAMPAIGN_ID]): r for r in lake.to_arrow(S.AD_SCORES, run_date=D).to_pylist()}
    for user in ("u2", None):
        answer = ranker.rank(RankIn(user_id=user, placement="search_top", k=10))
        assert answer["model_name"] == "deep_ctr" and len(answer["ads"]) == len(ADS)
        for ad in answer["ads"]:
            assert ad[S.P_CTCVR] == pytest.approx(batch[(user, "search_top", ad["item_id"], ad["campaign_id"])][S.P_CTCVR], abs=1e-9)
