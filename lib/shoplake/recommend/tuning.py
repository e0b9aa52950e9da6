"""Settings of the trained recommenders chosen on the validation splits (Ray Tune with ASHA, :mod:`shoplake.train.tune`).

``sequence_model.search`` names fields of ``sequence_model``, ``recommender.mf_search``
fields of ``training`` (matrix factorization's settings), each with the values to try.
A trial fits the model in one process on the history of every validation split of the
configured protocol (:mod:`shoplake.recommend.protocols`) and after every epoch ranks
the whole catalogue for each split's users as the run does
(:func:`shoplake.recommend.evaluate.rank_split`); it reports NDCG@10 pooled over the
(user, split) pairs, the figure the champion is chosen on. ASHA stops the trials
that trail; the epoch with the best validation NDCG@10 becomes the model's epochs.

The run then fits the winning settings the usual way, on Ray Train, for the
validation splits, the test split and serving. The test split never reaches a trial.

A trial steps with the global batch of the Ray Train fit (the batch size times
``ray.num_workers``), so that one of its epochs takes as many optimizer steps as one
epoch of the fit, and its best epoch means the same there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from shoplake.config import Config, SearchSpace
from shoplake.recommend.protocols import HoldoutSplit
from shoplake.train.tune import SearchResult, search, with_settings

#: The models with a search, and the configuration section their searched settings are fields of.
SECTIONS = {"sasrec": "sequence_model", "mf": "training"}


def search_space(cfg: Config, kind: str) -> SearchSpace:
    """The settings of ``kind`` searched on validation (empty: none, or a model without a search)."""
    if kind == "sasrec":
        return cfg.sequence_model.search
    if kind == "mf":
        return cfg.recommender.mf_search
    return {}


def _epochs_and_lr(cfg: Config, kind: str) -> tuple[int, float]:
    if kind == "sasrec":
        return cfg.sequence_model.epochs, cfg.sequence_model.lr
    return cfg.training.epochs, cfg.training.lr


def _task(cfg: Config, kind: str, split: HoldoutSplit, text_emb: np.ndarray | None):
    """The epoch task of ``kind`` on a split's history, with the Ray Train fit's global batch."""
    train = split.train
    workers = max(int(cfg.ray.num_workers), 1)
    if kind == "sasrec":
        from shoplake.recommend.sequence import build_task

        task = build_task(cfg, train.sequences, text_emb, train.times)
    else:
        from shoplake.recommend.mf_train import mf_task

        task = mf_task(cfg, train.pair_users, train.pair_items, train.pair_weights, train.user_ids, train.item_ids)
    return dataclasses.replace(task, batch_size=task.batch_size * workers)


def _scorer(kind: str, model, task):
    """The model as it stands after an epoch, wrapped like the run's fitted scorer."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if kind == "sasrec":
        from shoplake.recommend.models.sasrec import SasrecScorer

        return SasrecScorer(task.model_config, state, task.text_emb)
    from shoplake.recommend.models.scorers import MFScorer

    return MFScorer.from_state(state)


#: Scores one fitted scorer per validation split as the run's champion is chosen: ``(scorers, splits) -> score``.
Score = Callable[[Sequence, Sequence[HoldoutSplit]], float]


def _trial(settings: dict, data: dict) -> Iterator[float]:
    """Fit on every validation split's history with ``settings``; yield the pooled validation NDCG@10 after each epoch."""
    from shoplake.train.loop import local_epochs

    kind, splits, score = data["kind"], data["splits"], data["score"]
    cfg = with_settings(data["cfg"], SECTIONS[kind], settings)
    epochs, lr = _epochs_and_lr(cfg, kind)
    tasks = [_task(cfg, kind, split, emb) for split, emb in zip(splits, data["text_embeddings"])]
    runs = [local_epochs(task, {"epochs": epochs, "lr": lr, "seed": cfg.training.seed}) for task in tasks]
    for fitted in zip(*runs):
        yield score([_scorer(kind, model, task) for (model, _), task in zip(fitted, tasks)], splits)


def search_settings(
    cfg: Config,
    kind: str,
    validations: Sequence[HoldoutSplit],
    name: str,
    score: Score,
    *,
    text_embeddings: Callable[[Sequence[str]], np.ndarray] | None = None,
) -> tuple[Config, SearchResult | None]:
    """The configuration to fit ``kind`` with: ``cfg`` with the best settings of its search on validation, and the search.

    Args:
        cfg: Configuration: the model's search space (:func:`search_space`), ``tuning.*``,
            the model's own settings.
        kind: The model; only ``sasrec`` and ``mf`` have a search.
        validations: The validation splits of the run's protocol (never the test split).
        name: The search's name, its folder under ``<runs_dir>/ray_results``.
        score: Scores the models of a trial after an epoch, one per split
            (:func:`shoplake.recommend.evaluate.validation_score`: the pooled NDCG@10); higher is better.
        text_embeddings: Texts -> embeddings for the sequence model (default: the configured encoder).

    Returns:
        ``cfg`` with the winner's settings and its best epoch as the model's epochs, and
        the search; ``(cfg, None)`` without a search space or a validation split.

    Raises:
        RuntimeError: Every trial failed.
    """
    space = search_space(cfg, kind)
    if not space or not validations:
        return cfg, None
    embeddings = [None] * len(validations)
    if kind == "sasrec":
        if text_embeddings is None:
            from shoplake.text.encoder import encode_texts

            text_embeddings = lambda texts: encode_texts(list(texts), cfg.text_encoder)  # noqa: E731
        embeddings = [np.asarray(text_embeddings(split.train.texts), dtype=np.float32) for split in validations]
    data = {"cfg": cfg, "kind": kind, "splits": list(validations), "text_embeddings": embeddings, "score": score}
    epochs, _ = _epochs_and_lr(cfg, kind)
    result = search(cfg, name, _trial, space, metric="NDCG@10", mode="max", max_iterations=epochs, data=data)
    best = {**result.best.settings, "epochs": result.best.best_iteration}
    return with_settings(cfg, SECTIONS[kind], best), result


def chosen_settings(cfg: Config, kind: str, result: SearchResult) -> dict:
    """The settings a search chose, as the tuned model is fitted with them (its epochs included)."""
    section = getattr(cfg, SECTIONS[kind])
    return {key: getattr(section, key) for key in [*result.best.settings, "epochs"]}
