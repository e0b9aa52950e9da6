"""Settings of the ad models chosen on the validation split (Ray Tune with ASHA, :mod:`shoplake.train.tune`).

``ads.gbt_search`` and ``ads.deep_search`` name fields of ``ads`` with the values to
try. Every trial fits on the training split and reports, as it goes, the validation
ESMM loss of its raw probabilities: the click log-loss plus the conversion (pCTR x pCVR
against converted clicks) log-loss over every validation impression, the two targets
the models are judged on, before calibration:

* gradient-boosted trees: every ``GBT_ROUNDS_PER_STEP`` rounds of the click trees (and
  half as many of the conversion trees), up to ``ads.gbt_rounds``; the rounds of the best
  step become ``gbt_rounds``;
* the deep model: after every epoch, up to ``ads.epochs``; the best epoch becomes ``epochs``.

The run then fits each searched model with its best trial's settings the usual way
(the deep model on Ray Train). The same validation split then calibrates the models and
picks the champion, so a searched model's validation figures flatter it a little; test
takes no part.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from shoplake.ads import metrics as M
from shoplake.ads.data import AdData, Encoding
from shoplake.ads.models import DEEP_CTR, GBT, validation_losses
from shoplake.config import Config
from shoplake.train.tune import SearchResult, search, with_settings

SECTION = "ads"
#: Click boosting rounds between two validation reports of a trees trial (one ASHA iteration).
GBT_ROUNDS_PER_STEP = 20
#: What the trials report (lower is better).
METRIC = "ESMM log-loss"


def esmm_log_loss(click: np.ndarray, converted: np.ndarray, p_ctr: np.ndarray, p_cvr: np.ndarray) -> float:
    """Click log-loss plus the conversion log-loss of ``p_ctr x p_cvr``, over every impression."""
    return M.log_loss(click, p_ctr) + M.log_loss(converted, np.asarray(p_ctr) * np.asarray(p_cvr))


def _gbt_trial(settings: dict, data: dict) -> Iterator[float]:
    import xgboost as xgb

    from shoplake.ads.models import GBTModel

    cfg = with_settings(data["cfg"], SECTION, settings)
    ads, train, valid, encoding = cfg.ads, data["train"], data["valid"], data["encoding"]
    model = GBTModel(encoding, None, None)
    X, Xv = model._inputs(train), model._inputs(valid)
    clicked = train.click == 1
    params = {"objective": "binary:logistic", "max_depth": ads.gbt_max_depth, "eta": ads.gbt_eta, "tree_method": "hist",
              "seed": cfg.training.seed, "nthread": data["threads"], "min_child_weight": 5.0, "subsample": 0.9}  # fmt: skip
    d_click, d_conv = xgb.DMatrix(X, label=train.click), xgb.DMatrix(X[clicked], label=train.conversion[clicked])
    ctr = cvr = None
    done = 0
    while done < ads.gbt_rounds:
        rounds = min(GBT_ROUNDS_PER_STEP, ads.gbt_rounds - done)
        ctr = xgb.train(params, d_click, num_boost_round=rounds, xgb_model=ctr)
        cvr = xgb.train(params, d_conv, num_boost_round=max(rounds // 2, 1), xgb_model=cvr)
        done += rounds
        yield esmm_log_loss(valid.click, valid.converted, ctr.inplace_predict(Xv), cvr.inplace_predict(Xv))


def _deep_trial(settings: dict, data: dict) -> Iterator[float]:
    cfg = with_settings(data["cfg"], SECTION, settings)
    yield from validation_losses(cfg, data["train"], data["valid"], data["encoding"])


def search_settings(
    cfg: Config, model: str, train: AdData, valid: AdData, encoding: Encoding, name: str
) -> tuple[Config, SearchResult | None]:
    """``cfg`` with ``model``'s settings searched on validation in place, and the search (None when nothing is searched).

    Args:
        cfg: ``ads.gbt_search`` / ``ads.deep_search`` and the rest of ``ads``; ``tuning`` (budget, concurrency).
        model: ``gbt`` or ``deep_ctr`` (any other model has nothing to search).
        train: Training impressions.
        valid: Validation impressions.
        encoding: The training rows' encoding.
        name: The search's name, its folder under ``<runs_dir>/ray_results``.
    """
    ads = cfg.ads
    if model == GBT and ads.gbt_search:
        trial, space, steps, what = _gbt_trial, ads.gbt_search, -(-ads.gbt_rounds // GBT_ROUNDS_PER_STEP), "gbt_rounds"
    elif model == DEEP_CTR and ads.deep_search:
        trial, space, steps, what = _deep_trial, ads.deep_search, ads.epochs, "epochs"
    else:
        return cfg, None
    data = {"cfg": cfg, "train": train, "valid": valid, "encoding": encoding, "threads": max(int(cfg.tuning.cpus_per_trial), 1)}
    result = search(cfg, name, trial, space, metric=METRIC, mode="min", max_iterations=steps, data=data)
    best = dict(result.best.settings)
    if what == "gbt_rounds":
        best[what] = min(result.best.best_iteration * GBT_ROUNDS_PER_STEP, ads.gbt_rounds)
    else:
        best[what] = result.best.best_iteration
    return with_settings(cfg, SECTION, best), result
