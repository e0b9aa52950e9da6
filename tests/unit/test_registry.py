"""shoplake.registry: recommender bundles in a SQLite MLflow registry under the lake."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from helpers import POPULARITY, answers, make_bundle, mf_bundle
from shoplake.recommend.bundle import RecommenderBundle, load_serving_bundle
from shoplake.recommend.models.scorers import PopularityScorer
from shoplake.registry import NoServingModel, list_versions, log_model, metric_name, resolve_version, tracking_uri


@pytest.fixture
def in_tmp_cwd(tmp_path, monkeypatch):
    """Run the test from an empty folder, to see that nothing is written to the cwd."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def test_tracking_uri_defaults_to_sqlite_under_the_lake(make_cfg, tmp_path):
    cfg = make_cfg()
    assert tracking_uri(cfg) == f"sqlite:///{tmp_path}/lake/_mlflow/mlflow.db"
    assert tracking_uri(make_cfg("registry.uri=http://mlflow:5000")) == "http://mlflow:5000"
    with pytest.raises(ValueError, match="registry.uri"):
        tracking_uri(make_cfg("lake.root=s3://bucket/lake"))


def test_metric_names_are_made_mlflow_safe():
    assert metric_name("ndcg@10") == "ndcg_at_10"
    assert metric_name("recall@20 (cold)") == "recall_at_20 _cold_"


def test_empty_registry_is_no_serving_model_and_reading_creates_nothing(make_cfg, tmp_path, in_tmp_cwd):
    cfg = make_cfg()
    with pytest.raises(NoServingModel, match="no model registry"):
        load_serving_bundle(cfg)
    assert list_versions(cfg) == []
    assert not (tmp_path / "lake").exists()
    assert list(in_tmp_cwd.iterdir()) == []


def test_two_versions_alias_moves_and_bundle_round_trips(reg_cfg, tmp_path, in_tmp_cwd):
    cfg = reg_cfg
    first, second = mf_bundle(1), make_bundle(PopularityScorer(np.array(POPULARITY)))
    assert answers(first) != answers(second)
    v1 = log_model(
        cfg, first.save(tmp_path / "b1"), model_name="mf", params={"epochs": 3, "mf": {"dim": 4}},
        metrics={"ndcg@10": 0.25, "recall@20": 0.5}, table_versions={"gold.user_item_matrix": 7, "silver.items": 2},
        run_date="2024-03-01",
    )  # fmt: skip
    assert (v1.version, v1.kind, v1.aliases) == ("1", "mf", ["serving"])
    bundle, info = load_serving_bundle(cfg)
    assert info.version == "1" and info.run_id == v1.run_id
    assert answers(bundle) == answers(first)

    v2 = log_model(
        cfg, second.save(tmp_path / "b2"), model_name="popularity", params={}, metrics={"popularity.all.ndcg@10": 0.1, "mf.all.ndcg@10": 0.2},
        table_versions={"gold.user_item_matrix": 8}, run_date="2024-03-02",
    )  # fmt: skip
    assert v2.version == "2"
    bundle, info = load_serving_bundle(cfg)
    assert (info.version, info.kind, info.run_date) == ("2", "popularity", "2024-03-02")
    assert answers(bundle) == answers(second)
    # A pinned version still loads after the alias moved on.
    bundle, info = load_serving_bundle(cfg, version="1")
    assert info.version == "1" and answers(bundle) == answers(first)

    listed = list_versions(cfg)
    assert [(v.version, v.kind, v.run_date, v.aliases) for v in listed] == [
        ("2", "popularity", "2024-03-02", ["serving"]),
        ("1", "mf", "2024-03-01", []),
    ]
    assert listed[1].key_metric == 0.25 and listed[1].metrics["recall_at_20"] == 0.5
    assert listed[0].key_metric == 0.1  # the served model's own metric among those of every model

    from mlflow import MlflowClient

    run = MlflowClient(tracking_uri(cfg)).get_run(v1.run_id)
    assert run.data.tags["delta.gold.user_item_matrix.version"] == "7"
    assert run.data.tags["delta.silver.items.version"] == "2"
    assert run.data.tags["run_date"] == "2024-03-01"
    assert run.data.params == {"epochs": "3", "mf.dim": "4"}
    # Registry and artifacts live with the lake, nothing in the working directory.
    assert list(in_tmp_cwd.iterdir()) == []
    assert (tmp_path / "lake" / "_mlflow" / "mlflow.db").is_file()
    assert any(p.name == "bundle.json" for p in (tmp_path / "lake" / "_mlflow" / "artifacts").rglob("*"))


def test_unknown_version_and_unset_alias(reg_cfg, tmp_path, in_tmp_cwd):
    cfg = reg_cfg
    log_model(
        cfg, mf_bundle(2).save(tmp_path / "b"), model_name="mf", params={}, metrics={}, table_versions={},
        run_date="2024-03-01", set_serving=False, extra_artifacts={"eval": str(tmp_path / "b" / "bundle.json")},
    )  # fmt: skip
    with pytest.raises(NoServingModel, match="no version with alias 'serving'.*versions: 1"):
        load_serving_bundle(cfg)
    with pytest.raises(NoServingModel, match="no version 9"):
        resolve_version(cfg, "9")
    assert load_serving_bundle(cfg, version=1)[1].aliases == []


def test_downloads_are_cached_per_version(reg_cfg, tmp_path, in_tmp_cwd):
    from shoplake.registry import download_bundle

    cfg = reg_cfg
    log_model(cfg, mf_bundle(3).save(tmp_path / "b"), model_name="mf", params={}, metrics={}, table_versions={}, run_date="2024-03-01")
    first, _ = download_bundle(cfg)
    second, _ = download_bundle(cfg)
    assert first == second and (first / "bundle.json").is_file()
    mtime = os.stat(first / "bundle.json").st_mtime_ns
    assert os.stat(Path(second) / "bundle.json").st_mtime_ns == mtime
    pinned, _ = download_bundle(cfg, dst=tmp_path / "pinned")
    assert pinned == tmp_path / "pinned" and (pinned / "bundle.json").is_file()


def test_concurrent_first_downloads_all_get_a_whole_bundle(reg_cfg, tmp_path, in_tmp_cwd):
    """Replicas starting together fetch the same version at once: each must load a complete bundle."""
    from concurrent.futures import ThreadPoolExecutor

    from shoplake.registry import download_bundle

    cfg = reg_cfg
    bundle = mf_bundle(4)
    log_model(cfg, bundle.save(tmp_path / "b"), model_name="mf", params={}, metrics={}, table_versions={}, run_date="2024-03-01")
    with ThreadPoolExecutor(6) as pool:
        folders = list(pool.map(lambda _: download_bundle(cfg)[0], range(6)))
    assert len(set(folders)) == 1
    assert answers(RecommenderBundle.load(folders[0])) == answers(bundle)
    assert [p.name for p in folders[0].parent.iterdir() if p.name.startswith(".download-")] == []


def test_models_command_lists_every_use_cases_registered_versions(reg_cfg, tmp_path, capsys):
    from shoplake.cli import run

    log_model(
        reg_cfg,
        mf_bundle(1).save(tmp_path / "b1"),
        model_name="mf",
        params={},
        metrics={"ndcg@10": 0.25},
        table_versions={},
        run_date="2024-03-01",
    )
    log_model(
        reg_cfg, mf_bundle(2).save(tmp_path / "b2"), model_name="mf", params={}, metrics={}, table_versions={}, run_date="2024-03-02",
        registered_model=reg_cfg.fraud.registered_model,
    )  # fmt: skip
    assert run(["models", "--set", f"lake.root={tmp_path}/lake"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "shoplake-recommender in sqlite" in out and "0.2500" in out and "shoplake-fraud in sqlite" in out
    assert "forecast: no model registered as 'shoplake-forecaster'" in out

    assert run(["models", "--use-case", "fraud", "--set", f"lake.root={tmp_path}/lake"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "shoplake-fraud" in out and "recommender" not in out
