"""/recommend and /similar-items on Ray Serve, answering from the registered serving bundle."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import get_json
from shoplake.recommend.bundle import RecommenderBundle
from shoplake.recommend.models.mf import IdMap
from shoplake.recommend.models.scorers import MFScorer

N_USERS, N_ITEMS = 20, 15


def small_bundle() -> RecommenderBundle:
    rng = np.random.default_rng(5)
    histories = [rng.choice(N_ITEMS, size=3, replace=False) for _ in range(N_USERS)]
    return RecommenderBundle.from_histories(
        MFScorer(rng.normal(size=(N_USERS, 4)), rng.normal(size=(N_ITEMS, 4)), rng.normal(size=N_ITEMS)),
        IdMap([f"u{i}" for i in range(N_USERS)]), IdMap([f"i{j}" for j in range(N_ITEMS)]), histories,
        [np.ones(3, bool)] * N_USERS, popularity=rng.random(N_ITEMS), titles=[f"T{j}" for j in range(N_ITEMS)],
        categories=["c"] * N_ITEMS, metadata={"run_date": "2024-03-01"},
    )  # fmt: skip


@pytest.fixture(scope="module")
def served(serve_url, tmp_path_factory):
    """One Serve instance: the app over a lake with a registered model at /, and over an empty lake at /empty."""
    from ray import serve

    from shoplake.config import load_config
    from shoplake.registry import log_model
    from shoplake.serve.app import build_app

    root = tmp_path_factory.mktemp("serve")
    lake_root, empty_root = root / "lake", root / "empty-lake"
    cfg = load_config("local", [f"lake.root={lake_root}", "recommender.k=4"])
    bundle = small_bundle()
    info = log_model(cfg, bundle.save(root / "bundle"), model_name="mf", params={}, metrics={}, table_versions={}, run_date="2024-03-01")
    serve.run(build_app({"env": "local", "overrides": [f"lake.root={lake_root}", "recommender.k=4"]}), name="shoplake", route_prefix="/")
    serve.run(build_app({"env": "local", "overrides": [f"lake.root={empty_root}"]}), name="empty", route_prefix="/empty")
    yield serve_url, bundle, info
    serve.delete("shoplake")
    serve.delete("empty")


def test_recommend_known_and_unknown_user(served):
    url, bundle, info = served
    status, body = get_json(f"{url}/recommend?user_id=u3&k=5")
    assert status == 200, body
    assert (body["user_id"], body["k"], body["model_name"], body["model_version"], body["fallback"]) == ("u3", 5, "mf", info.version, None)
    assert [r["rank"] for r in body["items"]] == [1, 2, 3, 4, 5]
    assert [r["item_id"] for r in body["items"]] == [r.item_id for r in bundle.recommend(["u3"], 5)[0]]
    history = {bundle.item_ids.ids[j] for j in bundle.history(3)}
    assert not history & {r["item_id"] for r in body["items"]}
    assert all(r["reason"].startswith("bought ") for r in body["items"])

    status, body = get_json(f"{url}/recommend?user_id=someone-new")
    assert status == 200 and body["fallback"] == "popular" and body["k"] == 4  # default k from recommender.k
    popular = [bundle.item_ids.ids[j] for j in np.argsort(-bundle.popularity, kind="stable")[:4]]
    assert [r["item_id"] for r in body["items"]] == popular


def test_similar_items(served):
    url, bundle, info = served
    status, body = get_json(f"{url}/similar-items?item_id=i2&k=3")
    assert status == 200 and body["item_id"] == "i2" and body["model_version"] == info.version
    assert [r["item_id"] for r in body["items"]] == [r.item_id for r in bundle.similar_items("i2", 3)]
    assert "i2" not in {r["item_id"] for r in body["items"]}
    status, body = get_json(f"{url}/similar-items?item_id=nope")
    assert status == 404 and "nope" in body["detail"]


@pytest.mark.parametrize(
    ("query", "status", "words"),
    [
        ("/recommend?user_id=u1&k=0", 422, ["k", "greater than or equal to 1"]),
        ("/recommend?user_id=u1&k=101", 422, ["k", "less than or equal to 100"]),
        ("/recommend?user_id=u1&k=abc", 422, ["k", "integer", "'abc'"]),
        ("/recommend?k=3", 422, ["user_id is required"]),
        ("/recommend?user_id=u1&top=3&zz=1", 400, ["unknown query parameter", "top, zz"]),
        ("/similar-items?item=i1", 400, ["unknown query parameter", "item"]),
        ("/similar-items?k=2", 422, ["item_id is required"]),
    ],
)
def test_bad_requests_are_refused_with_a_message(served, query, status, words):
    url, _, _ = served
    got, body = get_json(url + query)
    assert got == status
    for word in words:
        assert word in body["detail"]


def test_health_names_the_model_and_no_model_is_503(served):
    url, _, info = served
    status, body = get_json(f"{url}/health")
    assert status == 200 and body["status"] == "ok"
    assert body["model"] == {
        "loaded": True,
        "name": "shoplake-recommender",
        "version": info.version,
        "kind": "mf",
        "run_date": "2024-03-01",
    }

    status, body = get_json(f"{url}/empty/health")
    assert status == 200 and body["status"] == "ok"
    assert body["model"]["loaded"] is False and "no model registry" in body["model"]["detail"]
    status, body = get_json(f"{url}/empty/recommend?user_id=u1")
    assert status == 503 and "no recommender model is loaded" in body["detail"]
    status, _ = get_json(f"{url}/empty/similar-items?item_id=i1")
    assert status == 503
