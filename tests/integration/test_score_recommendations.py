"""shoplake score-recommendations (ray_apps/score.py recommend): the registered model's top-k into serving.recommendations."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from shoplake.recommend.bundle import RecommenderBundle
from shoplake.recommend.models.mf import IdMap
from shoplake.recommend.models.scorers import MFScorer
from shoplake.recommend.schemas import RECOMMENDATIONS

N_USERS, N_ITEMS, K = 40, 12, 5


def small_bundle() -> RecommenderBundle:
    rng = np.random.default_rng(11)
    users = IdMap([f"u{i:02d}" for i in range(N_USERS)])
    items = IdMap([f"i{j:02d}" for j in range(N_ITEMS)])
    histories = [rng.choice(N_ITEMS, size=rng.integers(0, 5), replace=False) for _ in range(N_USERS)]
    bought = [rng.random(len(h)) < 0.5 for h in histories]
    scorer = MFScorer(rng.normal(size=(N_USERS, 4)), rng.normal(size=(N_ITEMS, 4)), rng.normal(size=N_ITEMS))
    return RecommenderBundle.from_histories(
        scorer, users, items, histories, bought, popularity=rng.random(N_ITEMS), titles=[f"T{j}" for j in range(N_ITEMS)],
        categories=["c"] * N_ITEMS, metadata={"run_date": "2024-03-01"},
    )  # fmt: skip


@pytest.fixture
def registered(make_cfg, tmp_path):
    from shoplake.registry import log_model

    cfg = make_cfg("lake.engine=delta-rs", f"recommender.k={K}")
    bundle = small_bundle()
    info = log_model(
        cfg, bundle.save(tmp_path / "bundle"), model_name="mf", params={}, metrics={}, table_versions={}, run_date="2024-03-01"
    )
    return cfg, bundle, info


def test_scoring_writes_top_k_per_user_and_replaces_the_run_date(registered, ray_local):
    from deltalake import DeltaTable

    from shoplake.lake import Lake
    from shoplake.recommend.score import score_recommendations

    cfg, bundle, info = registered
    lake = Lake(cfg)
    first = score_recommendations(cfg, lake, None)
    assert (first.rows, first.users, first.model_version, first.run_date) == (N_USERS * K, N_USERS, info.version, dt.date(2024, 3, 1))
    assert first.scored_at.tzinfo is not None

    table = DeltaTable(lake.uri(RECOMMENDATIONS)).to_pyarrow_table()
    assert table.schema.remove_metadata() == RECOMMENDATIONS.arrow_schema().remove_metadata()
    rows = table.to_pylist()
    assert len(rows) == N_USERS * K
    by_user: dict[str, list[dict]] = {}
    for r in rows:
        by_user.setdefault(r["user_id"], []).append(r)
    assert sorted(by_user) == list(bundle.user_ids.ids)
    expected = dict(zip(bundle.user_ids.ids, bundle.recommend(bundle.user_ids.ids, K)))
    for user, recs in by_user.items():
        recs.sort(key=lambda r: r["rank"])
        assert [r["rank"] for r in recs] == list(range(1, K + 1))
        # The same answer as the in-process bundle (and so as /recommend), nothing the user already had.
        assert [r["item_id"] for r in recs] == [e.item_id for e in expected[user]]
        seen = {bundle.item_ids.ids[j] for j in bundle.history(int(bundle.user_index([user])[0]))}
        assert not seen & {r["item_id"] for r in recs}
    assert {(r["model_name"], r["model_version"], r["run_date"]) for r in rows} == {("mf", info.version, dt.date(2024, 3, 1))}
    assert {r["scored_at"] for r in rows} == {first.scored_at}

    # The same date again: replaced in one commit, not duplicated.
    again = score_recommendations(cfg, lake, "2024-03-01")
    assert again.table_version == first.table_version + 1
    assert lake.row_count(RECOMMENDATIONS) == N_USERS * K

    # Another date: a second partition; explicit users, unknown ones get the popular items.
    other = score_recommendations(cfg, lake, dt.date(2024, 3, 2), users=["u01", "nobody", "u01"])
    assert other.users == 2 and other.rows == 2 * K
    t = DeltaTable(lake.uri(RECOMMENDATIONS)).to_pyarrow_table()
    assert lake.row_count(RECOMMENDATIONS) == N_USERS * K + 2 * K
    d2 = t.filter(pa.compute.equal(t["run_date"], pa.scalar(dt.date(2024, 3, 2)))).to_pylist()
    popular = [bundle.item_ids.ids[j] for j in np.argsort(-bundle.popularity, kind="stable")[:K]]
    assert [r["item_id"] for r in sorted((r for r in d2 if r["user_id"] == "nobody"), key=lambda r: r["rank"])] == popular


def test_app_main_and_no_model(registered, make_cfg, tmp_path, ray_local, capsys):
    cfg, _, info = registered
    from shoplake.recommend.commands import score

    assert score(["--set", f"lake.root={cfg.lake.root}", "--set", f"recommender.k={K}", "--run-date", "2024-03-05", "--actors", "1"]) == 0
    out = capsys.readouterr().out
    assert f"scored {N_USERS} users with mf version {info.version} for 2024-03-05: {N_USERS * K} rows" in out
    with pytest.raises(SystemExit, match="no model registry"):
        score(["--set", f"lake.root={tmp_path}/empty-lake"])
