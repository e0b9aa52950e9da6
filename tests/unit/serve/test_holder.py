"""shoplake.serve.holder: one replica follows the serving alias of any use case's registered model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi import HTTPException

from helpers import POPULARITY, answers, make_bundle, mf_bundle
from shoplake.recommend.models.scorers import PopularityScorer
from shoplake.recommend.serve import RecommenderModel
from shoplake.registry import log_model
from shoplake.serve.holder import RegisteredModel


def _register(cfg, bundle, folder, model_name: str, set_serving: bool = True):
    return log_model(
        cfg, bundle.save(folder), model_name=model_name, params={}, metrics={}, table_versions={}, run_date="2024-03-01",
        set_serving=set_serving,
    )  # fmt: skip


def test_a_newly_registered_recommender_is_served_without_a_restart(reg_cfg, tmp_path):
    first, second = mf_bundle(1), make_bundle(PopularityScorer(np.array(POPULARITY)))
    model = RecommenderModel(reg_cfg, check_every_s=0)
    assert model.status()["loaded"] is False
    with pytest.raises(HTTPException) as no_model:
        model.recommend("u1")
    assert no_model.value.status_code == 503 and "no recommender model is loaded" in no_model.value.detail

    _register(reg_cfg, first, tmp_path / "b1", "mf")
    answer = model.recommend("u1", 3)
    assert (answer["model_name"], answer["model_version"]) == ("mf", "1")
    assert [i["item_id"] for i in answer["items"]] == [item for item, _, _ in answers(first)[0]]

    _register(reg_cfg, second, tmp_path / "b2", "popularity")
    answer = model.recommend("u1", 3)
    assert (answer["model_name"], answer["model_version"]) == ("popularity", "2")
    assert [i["item_id"] for i in answer["items"]] == [item for item, _, _ in answers(second)[0]]
    assert model.status() == {
        "loaded": True,
        "name": "shoplake-recommender",
        "version": "2",
        "run_date": "2024-03-01",
        "kind": "popularity",
    }

    # A version registered without moving the alias is not served.
    _register(reg_cfg, first, tmp_path / "b3", "mf", set_serving=False)
    assert model.recommend("u1", 3)["model_version"] == "2"


def test_the_alias_is_checked_at_most_every_check_every_s(reg_cfg, tmp_path):
    _register(reg_cfg, mf_bundle(1), tmp_path / "b1", "mf")
    model = RecommenderModel(reg_cfg, check_every_s=3600)
    _register(reg_cfg, mf_bundle(2), tmp_path / "b2", "mf")
    assert model.recommend("u1")["model_version"] == "1"
    model.refresh()
    assert model.recommend("u1")["model_version"] == "2"


def test_a_broken_new_version_keeps_the_loaded_one_and_says_why(reg_cfg, tmp_path):
    _register(reg_cfg, mf_bundle(1), tmp_path / "b1", "mf")
    model = RecommenderModel(reg_cfg, check_every_s=0)
    broken = mf_bundle(2).save(tmp_path / "b2")
    (broken / "bundle.json").write_text(json.dumps({"kind": "no-such-model"}))
    log_model(reg_cfg, broken, model_name="mf", params={}, metrics={}, table_versions={}, run_date="2024-03-02")

    assert model.recommend("u1")["model_version"] == "1"
    status = model.status()
    assert status["version"] == "1" and status["detail"].startswith("could not load the recommender model")


def test_any_bundle_class_can_be_held(reg_cfg, tmp_path):
    class Labels:
        kind = "labels"

        def __init__(self, labels):
            self.labels = labels

        def save(self, folder):
            folder.mkdir(parents=True)
            (folder / "bundle.json").write_text(json.dumps({"labels": self.labels}))
            return folder

        @classmethod
        def load(cls, folder):
            return cls(json.loads((folder / "bundle.json").read_text())["labels"])

    name = "shoplake-labels"
    held = RegisteredModel(reg_cfg, name, Labels.load, "labels", check_every_s=0, describe=lambda b: {"labels": len(b.labels)})
    with pytest.raises(RuntimeError, match="no labels model is loaded"):
        held.current()
    log_model(
        reg_cfg, Labels(["a", "b"]).save(tmp_path / "l1"), model_name="labels", params={}, metrics={}, table_versions={},
        run_date="2024-03-01", registered_model=name,
    )  # fmt: skip
    bundle, info = held.current()
    assert bundle.labels == ["a", "b"] and info.version == "1"
    assert held.status()["labels"] == 2
