"""Settings of the trained fraud models chosen on the validation split (Ray Tune with ASHA, :mod:`shoplake.train.tune`).

``fraud.gbt_search`` and ``fraud.nn_search`` name fields of ``fraud`` with the values
to try. Each trial fits on the training payments in one process and reports the
validation PR-AUC as it goes:

* gradient-boosted trees: every ``GBT_ROUNDS_PER_STEP`` boosting rounds, up to
  ``fraud.gbt_rounds`` (ASHA stops trials whose trees trail after as many rounds);
* the tabular network: after every epoch, up to ``fraud.nn_epochs``; the epoch with
  the best validation PR-AUC becomes the final fit's ``nn_epochs``.

The settings of the best trial are then trained the usual way on Ray Train
(:func:`shoplake.fraud.models.gbt.train_gbt`, :func:`~shoplake.fraud.models.tabular.train_tabular_nn`);
test takes no part.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

from shoplake.config import Config
from shoplake.fraud import metrics as M
from shoplake.fraud.models.base import GBT, TABULAR_NN
from shoplake.train.tune import SearchResult, search, with_settings

SECTION = "fraud"
#: Boosting rounds between two validation reports of a trees trial (one ASHA iteration).
GBT_ROUNDS_PER_STEP = 20


def _gbt_trial(settings: dict, data: dict) -> Iterator[float]:
    import xgboost

    from shoplake.fraud.models.gbt import gbt_params

    cfg = with_settings(data["cfg"], SECTION, settings)
    y_train = data["y_train"]
    positives = float(y_train.sum())
    params = {**gbt_params(cfg, (len(y_train) - positives) / positives), "nthread": data["threads"]}
    dtrain = xgboost.DMatrix(data["X_train"], label=y_train, nthread=data["threads"])
    booster, done = None, 0
    while done < cfg.fraud.gbt_rounds:
        rounds = min(GBT_ROUNDS_PER_STEP, cfg.fraud.gbt_rounds - done)
        booster = xgboost.train(params, dtrain, num_boost_round=rounds, xgb_model=booster, verbose_eval=False)
        done += rounds
        yield M.average_precision(data["y_valid"], booster.inplace_predict(data["X_valid"]))


def _nn_trial(settings: dict, data: dict) -> Iterator[float]:
    import torch

    from shoplake.fraud.models.tabular import TabularNNTask, TabularSettings
    from shoplake.train.loop import local_epochs

    cfg = with_settings(data["cfg"], SECTION, settings)
    fc = cfg.fraud
    tab = TabularSettings.fit(data["X_train"], data["feature_names"], fc.nn_hidden, fc.nn_layers)
    y_train = data["y_train"]
    positives = float(y_train.sum())
    task = TabularNNTask(
        X=tab.transform(data["X_train"]), y=y_train.astype(np.float32), settings=tab, batch_size=fc.nn_batch_size,
        pos_weight=(len(y_train) - positives) / positives, seed=cfg.training.seed,
    )  # fmt: skip
    x_valid = torch.from_numpy(tab.transform(data["X_valid"]))
    for model, _ in local_epochs(task, {"epochs": fc.nn_epochs, "lr": fc.nn_lr, "seed": cfg.training.seed}):
        model.eval()
        with torch.no_grad():
            scores = model(x_valid).numpy()
        model.train()
        yield M.average_precision(data["y_valid"], scores)


def searched_space(cfg: Config, model: str) -> dict:
    """The settings of ``model`` searched on validation (``fraud.gbt_search``, ``fraud.nn_search``); empty: none."""
    return dict(cfg.fraud.gbt_search if model == GBT else cfg.fraud.nn_search if model == TABULAR_NN else {})


def search_settings(
    cfg: Config, model: str, X_train: np.ndarray, y_train: np.ndarray, X_valid: np.ndarray, y_valid: np.ndarray,
    feature_names: Sequence[str], name: str,
) -> tuple[Config, SearchResult | None]:  # fmt: skip
    """The configuration to train ``model`` with: ``cfg`` with the best searched settings, and the search (None without one).

    Raises:
        RuntimeError: Every trial failed.
    """
    space = searched_space(cfg, model)
    if not space:
        return cfg, None
    data = {
        "cfg": cfg, "X_train": X_train, "y_train": y_train, "X_valid": X_valid, "y_valid": y_valid,
        "feature_names": tuple(feature_names), "threads": max(int(cfg.tuning.cpus_per_trial), 1),
    }  # fmt: skip
    if model == GBT:
        trial, iterations = _gbt_trial, math.ceil(cfg.fraud.gbt_rounds / GBT_ROUNDS_PER_STEP)
    else:
        trial, iterations = _nn_trial, cfg.fraud.nn_epochs
    result = search(cfg, name, trial, space, metric="PR-AUC", mode="max", max_iterations=iterations, data=data)
    best = dict(result.best.settings)
    if model == TABULAR_NN:
        best["nn_epochs"] = result.best.best_iteration
    return with_settings(cfg, SECTION, best), result
