"""The validation search: Ray Tune trials with ASHA, the configured search space, the in-process epochs of a trial."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from shoplake.config import ConfigError, Distribution
from shoplake.train.loop import local_epochs
from shoplake.train.tune import search, to_tune_space


def test_search_space_from_config(make_cfg):
    cfg = make_cfg("tuning.seed=3")
    space = to_tune_space({"depth": [3, 5], "lr": Distribution(loguniform=(1e-4, 1e-2)), "width": Distribution(randint=(2, 4))})
    assert sorted(space["depth"].categories) == [3, 5]
    assert space["lr"].lower == pytest.approx(1e-4) and space["lr"].upper == pytest.approx(1e-2)
    # Both ends of a configured integer range can be drawn.
    assert (space["width"].lower, space["width"].upper) == (2, 5)
    with pytest.raises(ValueError, match="'depth' has no values"):
        to_tune_space({"depth": []})
    assert cfg.tuning.seed == 3


@pytest.mark.parametrize(
    "value, message",
    [
        ("{uniform: [1, 0]}", "low end 1.0 must be below"),
        ("{loguniform: [0, 1]}", "must be positive"),
        ("{uniform: [0, 1], randint: [0, 1]}", "exactly one"),
    ],
)
def test_bad_distribution_names_the_problem(value, message):
    with pytest.raises(ValueError, match=message):
        Distribution.model_validate(__import__("yaml").safe_load(value))


def test_tuning_settings_are_checked(make_cfg):
    with pytest.raises(ConfigError, match="tuning.reduction_factor"):
        make_cfg("tuning.reduction_factor=1")


def _bowl(settings: dict, data: dict):
    """Scores that rise with every iteration towards a peak at ``data['peak']``; an x above ``data['fail_above']`` fails."""
    if settings["x"] > data["fail_above"]:
        raise ValueError("this setting cannot be fitted")
    for it in range(1, settings["iterations"] + 1):
        yield 1.0 - (settings["x"] - data["peak"]) ** 2 - 1.0 / it


def test_search_finds_the_best_trial_and_stops_trailing_ones_early(make_cfg, ray_local):
    cfg = make_cfg("tuning.num_samples=8", "tuning.grace_period=1", "tuning.reduction_factor=2", "tuning.seed=11")
    space = {"x": Distribution(uniform=(0.0, 1.0))}
    data = {"peak": 0.7, "fail_above": 2.0}
    first = search(cfg, "bowl", _bowl, space, metric="score", mode="max", max_iterations=8, data=data, fixed={"iterations": 8})
    assert len(first.trials) == 8
    assert all(t.error is None for t in first.trials)
    # ASHA let the trailing trials stop before the last iteration; the best ran to its end.
    assert first.stopped_early >= 1
    assert first.best.iterations == 8 and first.best.best_iteration == 8
    finished = [t for t in first.trials if t.iterations == 8]
    assert first.best.best_score == max(t.best_score for t in finished)
    assert first.best.best_score == pytest.approx(1 - (first.best.settings["x"] - 0.7) ** 2 - 1 / 8)


def test_the_same_seed_draws_the_same_settings(make_cfg, ray_local):
    space = {"x": Distribution(uniform=(0.0, 1.0))}
    data = {"peak": 0.7, "fail_above": 2.0}

    def drawn(seed: int, name: str) -> list[float]:
        cfg = make_cfg("tuning.num_samples=3", f"tuning.seed={seed}")
        result = search(cfg, name, _bowl, space, metric="score", mode="max", max_iterations=1, data=data, fixed={"iterations": 1})
        return sorted(t.settings["x"] for t in result.trials)

    first = drawn(5, "seed-5")
    assert drawn(5, "seed-5-again") == pytest.approx(first)
    assert drawn(6, "seed-6") != pytest.approx(first)


def test_failed_trials_are_recorded_and_all_failing_is_an_error(make_cfg, ray_local):
    cfg = make_cfg("tuning.num_samples=3", "tuning.seed=1")
    space = {"x": [0.2, 0.99]}
    result = search(cfg, "half-fail", _bowl, space, metric="loss", mode="min", max_iterations=3, data={"peak": 0.5, "fail_above": 0.95},
                    fixed={"iterations": 3})  # fmt: skip
    failed = [t for t in result.trials if t.error]
    assert failed and all(t.settings["x"] == 0.99 and math.isnan(t.best_score) for t in failed)
    # mode=min: the best is the lowest score, reached at the first iteration of the x=0.2 trials.
    assert result.best.settings["x"] == 0.2 and result.best.best_iteration == 1
    with pytest.raises(RuntimeError, match="every trial failed"):
        search(make_cfg("tuning.num_samples=1"), "all-fail", _bowl, {"x": [0.99]}, metric="score", mode="max", max_iterations=3, data={"peak": 0.5, "fail_above": 0.95},
               fixed={"iterations": 3})  # fmt: skip


class _Line:
    """y = 3x - 1 on 64 points: a task the in-process epochs must fit."""

    def __init__(self):
        self.x = torch.linspace(-1, 1, 64).unsqueeze(1)
        self.y = 3 * self.x - 1

    def build_model(self) -> nn.Module:
        return nn.Linear(1, 1)

    def batches(self, epoch, rank, world_size):
        for i in range(0, 64, 16):
            yield self.x[i : i + 16], self.y[i : i + 16]

    def loss(self, model, batch, generator):
        x, y = batch
        return nn.functional.mse_loss(model(x), y), len(x)

    def artifacts(self):
        return {}


def test_local_epochs_train_in_process():
    losses = [loss for _, loss in local_epochs(_Line(), {"epochs": 30, "lr": 0.05, "seed": 0})]
    assert len(losses) == 30
    assert losses[-1] < 0.05 * losses[0]
    # The same seed gives the same run.
    assert [loss for _, loss in local_epochs(_Line(), {"epochs": 3, "lr": 0.05, "seed": 0})] == pytest.approx(losses[:3])


def test_searched_settings_are_fields_of_the_use_cases_section(make_cfg):
    from shoplake.train.tune import with_settings

    cfg = make_cfg()
    tuned = with_settings(cfg, "fraud", {"gbt_max_depth": 3, "gbt_eta": 0.05})
    assert (tuned.fraud.gbt_max_depth, tuned.fraud.gbt_eta) == (3, 0.05)
    assert cfg.fraud.gbt_max_depth != 3 or cfg.fraud.gbt_eta != 0.05  # the original is left as it was
    with pytest.raises(ValueError, match="gbt_depth is not a setting of fraud"):
        with_settings(cfg, "fraud", {"gbt_depth": 3})
    with pytest.raises(ValueError, match="gbt_max_depth"):
        with_settings(cfg, "fraud", {"gbt_max_depth": 0})
