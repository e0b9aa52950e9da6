"""Training the text-aware sequence recommender (:mod:`shoplake.recommend.models.sasrec`) on Ray Train.

Each user's item sequence (catalogue indices, oldest first) is cut into windows of
``max_len + 1`` tokens from its most recent end backwards; within a window every
position predicts the next item with a full softmax over the catalogue. The first
window of a user starts with the start token, so the model also learns what users
buy first (the answer for an empty history).

Two things make the model predict what a shop's customers buy *next*, not what
happens to follow in a log:

- **Baskets.** Items bought together (the same timestamp, one order) have no order
  of their own; whatever order the log gives them (often by item code) is a pattern
  the model would learn and that never holds for a future order. With timestamps,
  the items of a basket are shuffled anew every epoch.
- **Recency.** What sells changes with the season; with
  ``recency_half_life_days`` a target's weight halves every that many days before
  the newest interaction, so the model learns what is bought now.

:func:`train_sequence_model` runs :class:`SequenceTask` through
:func:`shoplake.train.loop.fit`: ``cfg.ray.num_workers`` DDP workers, a
checkpoint every epoch, resume after a failure.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from shoplake.config import Config
from shoplake.recommend.models.sasrec import PAD, build_model, dedupe_index, sequence_loss
from shoplake.train.loop import FitResult, fit

log = logging.getLogger(__name__)

#: The model's settings inside each checkpoint.
MODEL_CONFIG_FILE = "sasrec_config.json"

#: Windows whose targets all weigh less than this are left out: they would cost a
#: step and teach nothing.
MIN_WINDOW_WEIGHT = 1e-3


def recency_weights(timestamps: Sequence[np.ndarray], half_life_days: float | None, floor: float = 0.0) -> list[np.ndarray]:
    """Per-interaction weights that halve every ``half_life_days`` before the newest one.

    Args:
        timestamps: Per user, interaction times in seconds (any epoch), aligned with
            the item sequences.
        half_life_days: Half-life of a weight; None: every weight is 1.
        floor: Weight that even the oldest interaction keeps, in ``[0, 1)``.

    Returns:
        float32 weights in ``(floor, 1]``, one array per user.
    """
    arrays = [np.asarray(t, dtype=np.float64).ravel() for t in timestamps]
    if half_life_days is None:
        return [np.ones(len(t), dtype=np.float32) for t in arrays]
    now = max((t.max() for t in arrays if t.size), default=0.0)
    return [(floor + (1.0 - floor) * np.exp2(-(now - t) / (86400.0 * half_life_days))).astype(np.float32) for t in arrays]


@dataclass
class Windows:
    """Training windows of ``max_len + 1`` tokens, left-padded.

    Position ``j`` of a window is the input at ``j`` and the target of ``j - 1``:
    ``inputs = tokens[:, :-1]``, ``targets = tokens[:, 1:]`` with the start token
    (never a target) replaced by ``PAD``.

    Attributes:
        tokens: int64 tokens (``PAD`` where empty), ``(n_windows, max_len + 1)``.
        weights: float32 weight of each token as a target (0 for padding and the
            start token).
        baskets: int64 basket number of each token within its window, ascending
            (-1 for padding, 0 for the start token): tokens of one basket may be
            reordered among themselves.
        start_token: The start token (``n_items + 1``).
    """

    tokens: np.ndarray
    weights: np.ndarray
    baskets: np.ndarray
    start_token: int

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def inputs(self) -> np.ndarray:
        return self.tokens[:, :-1]

    @property
    def targets(self) -> np.ndarray:
        targets = self.tokens[:, 1:]
        return np.where(targets == self.start_token, PAD, targets)

    def shuffled(self, rng: np.random.Generator) -> Windows:
        """A copy with the tokens of each basket in a random order (padding stays left)."""
        order = np.argsort(self.baskets + 0.5 * rng.random(self.baskets.shape), axis=1, kind="stable")
        return Windows(
            np.take_along_axis(self.tokens, order, 1),
            np.take_along_axis(self.weights, order, 1),
            np.take_along_axis(self.baskets, order, 1),
            self.start_token,
        )


def sequence_windows(
    sequences: Sequence[np.ndarray],
    max_len: int,
    n_items: int,
    dedupe: str = "none",
    weights: Sequence[np.ndarray] | None = None,
    timestamps: Sequence[np.ndarray] | None = None,
) -> Windows:
    """Training windows of all sequences.

    A sequence ``s`` becomes the tokens ``[start, s_1 + 1, ..., s_n + 1]`` (see
    :mod:`shoplake.recommend.models.sasrec` for the token convention), cut from the end into
    pieces of at most ``max_len + 1`` tokens that overlap by one, so that every item
    is a target exactly once. Windows whose targets all weigh less than
    :data:`MIN_WINDOW_WEIGHT` are left out.

    Args:
        sequences: Per user, catalogue indices, oldest first.
        max_len: Positions the model reads.
        n_items: Catalogue size.
        dedupe: How repeats are removed first (see :func:`~shoplake.recommend.models.sasrec.dedupe_index`).
        weights: Per user, a weight for each item (see :func:`recency_weights`); None: all 1.
        timestamps: Per user, the time of each item; items with equal times form a
            basket. None: every item is its own basket.

    Returns:
        The windows.

    Raises:
        ValueError: An index is outside ``[0, n_items)``, or weights or timestamps
            do not match the sequences.
    """
    for name, extra in (("weight", weights), ("timestamp", timestamps)):
        if extra is not None and len(extra) != len(sequences):
            raise ValueError(f"{len(extra)} {name} arrays for {len(sequences)} sequences")
    tokens_out: list[np.ndarray] = []
    weights_out: list[np.ndarray] = []
    baskets_out: list[np.ndarray] = []
    for row, seq in enumerate(sequences):
        seq = np.asarray(seq, dtype=np.int64).ravel()
        w = np.ones(len(seq), np.float32) if weights is None else np.asarray(weights[row], dtype=np.float32).ravel()
        ts = np.arange(len(seq)) if timestamps is None else np.asarray(timestamps[row]).ravel()
        if len(w) != len(seq) or len(ts) != len(seq):
            raise ValueError(f"sequence {row} has {len(seq)} items but {len(w)} weights and {len(ts)} timestamps")
        keep = dedupe_index(seq, dedupe)
        items, w, ts = seq[keep], w[keep], ts[keep]
        if not items.size:
            continue
        if items.min() < 0 or items.max() >= n_items:
            raise ValueError(f"sequence {row} has item indices outside [0, {n_items})")
        tokens = np.concatenate([[n_items + 1], items + 1])
        token_weights = np.concatenate([[0.0], w]).astype(np.float32)
        # Basket numbers: 0 for the start token, then 1, 2, ... per distinct time, in order.
        token_baskets = np.concatenate([[0], 1 + np.cumsum(np.concatenate([[0], ts[1:] != ts[:-1]]))])
        stop = len(tokens)
        while stop > 1:
            start = max(0, stop - max_len - 1)
            chunk = slice(start, stop)
            stop -= max_len
            if token_weights[chunk][1:].max() < MIN_WINDOW_WEIGHT:
                continue
            size = chunk.stop - start
            x = np.full(max_len + 1, PAD, np.int64)
            xw = np.zeros(max_len + 1, np.float32)
            xb = np.full(max_len + 1, -1, np.int64)
            x[-size:], xw[-size:], xb[-size:] = tokens[chunk], token_weights[chunk], token_baskets[chunk]
            tokens_out.append(x)
            weights_out.append(xw)
            baskets_out.append(xb)
    if not tokens_out:
        empty = np.zeros((0, max_len + 1), np.int64)
        return Windows(empty, empty.astype(np.float32), empty.copy(), n_items + 1)
    return Windows(np.stack(tokens_out), np.stack(weights_out), np.stack(baskets_out), n_items + 1)


@dataclass
class SequenceTask:
    """The sequence recommender as an :class:`~shoplake.train.loop.EpochTask`.

    Attributes:
        windows: The training windows.
        text_emb: Text embeddings of the catalogue, ``(n_items, text_dim)``.
        model_config: The model's settings (see :func:`model_config_from`).
        known: Items that are targets of the training windows; the others are
            represented by their text alone and left out of the training softmax.
        batch_size: Windows per step and worker.
        shuffle_baskets: Reorder the items of each basket every epoch.
        mask_seen: Leave items already seen in a window out of its softmax
            (see :func:`~shoplake.recommend.models.sasrec.sequence_loss`).
        seed: Shuffling seed (with the epoch number).
    """

    windows: Windows
    text_emb: np.ndarray
    model_config: dict
    known: np.ndarray
    batch_size: int = 128
    shuffle_baskets: bool = True
    mask_seen: bool = False
    seed: int = 0
    _candidates: torch.Tensor | None = field(default=None, init=False, repr=False)

    def build_model(self) -> nn.Module:
        return build_model(self.model_config, self.text_emb, self.known)

    def batches(self, epoch: int, rank: int, world_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """A shuffled, equal-sized slice of the windows per rank (padded by wrapping).

        Every rank must take the same number of steps, or DDP's all-reduce waits forever.
        """
        rng = np.random.default_rng([self.seed, epoch])
        n = len(self.windows)
        order = rng.permutation(n)
        per_rank = math.ceil(n / world_size)
        order = np.resize(order, per_rank * world_size)
        mine = order[rank * per_rank : (rank + 1) * per_rank]
        windows = self.windows.shuffled(rng) if self.shuffle_baskets else self.windows
        for start in range(0, len(mine), self.batch_size):
            idx = mine[start : start + self.batch_size]
            tokens, weights = windows.tokens[idx], windows.weights[idx]
            targets = np.where(tokens[:, 1:] == windows.start_token, PAD, tokens[:, 1:])
            yield torch.from_numpy(tokens[:, :-1].copy()), torch.from_numpy(targets), torch.from_numpy(weights[:, 1:].copy())

    def loss(self, model: nn.Module, batch, generator: torch.Generator) -> tuple[torch.Tensor, int]:
        inputs, targets, weights = batch
        if self._candidates is None or self._candidates.device != inputs.device:
            self._candidates = torch.from_numpy(np.flatnonzero(self.known)).to(inputs.device)
        return sequence_loss(model, inputs, targets, self._candidates, weights, self.mask_seen)

    def artifacts(self) -> dict[str, str]:
        return {MODEL_CONFIG_FILE: json.dumps(self.model_config)}


def model_config_from(cfg: Config, n_items: int) -> dict:
    """The model's settings from ``cfg.sequence_model``, as saved beside its weights.

    Raises:
        ValueError: ``fine_tune_text`` is set (not supported: the text encoder stays frozen),
            or ``dim`` is not divisible by ``heads``.
    """
    sm = cfg.sequence_model
    if sm.fine_tune_text:
        raise ValueError("sequence_model.fine_tune_text is not supported: the text embeddings are precomputed and frozen")
    if sm.dim % sm.heads:
        raise ValueError(f"sequence_model.dim ({sm.dim}) must be divisible by sequence_model.heads ({sm.heads})")
    return {
        "n_items": int(n_items),
        "max_len": sm.max_len,
        "dim": sm.dim,
        "layers": sm.layers,
        "heads": sm.heads,
        "dropout": sm.dropout,
        "text_fusion": sm.text_fusion,
        "id_dropout": sm.id_dropout,
        "item_bias": sm.item_bias,
        "dedupe": sm.dedupe,
    }


def build_task(
    cfg: Config,
    sequences: Sequence[np.ndarray],
    text_emb: np.ndarray,
    timestamps: Sequence[np.ndarray] | None = None,
) -> SequenceTask:
    """A :class:`SequenceTask` of ``sequences`` with ``cfg.sequence_model``'s settings.

    Args:
        cfg: Configuration (``cfg.sequence_model``, ``cfg.training.seed``).
        sequences: Per user, catalogue indices, oldest first.
        text_emb: Text embeddings of the catalogue, ``(n_items, text_dim)``.
        timestamps: Per user, the time of each interaction in seconds: items with
            equal times are one basket, and recent ones weigh more with
            ``cfg.sequence_model.recency_half_life_days``. None: one item per basket,
            equal weights.

    Raises:
        ValueError: No sequence has an item, ``text_emb`` is not 2-D, or see
            :func:`model_config_from`.
    """
    text_emb = np.asarray(text_emb, dtype=np.float32)
    if text_emb.ndim != 2:
        raise ValueError(f"text_emb must be 2-D (n_items, text_dim), got shape {text_emb.shape}")
    sm = cfg.sequence_model
    n_items = text_emb.shape[0]
    model_config = model_config_from(cfg, n_items)
    weights = None
    if timestamps is not None and sm.recency_half_life_days is not None:
        weights = recency_weights(timestamps, sm.recency_half_life_days, sm.recency_floor)
    windows = sequence_windows(sequences, model_config["max_len"], n_items, model_config["dedupe"], weights, timestamps)
    if not len(windows):
        raise ValueError("no sequence has an item to train on")
    known = np.zeros(n_items, dtype=bool)
    targets = windows.targets
    known[targets[targets != PAD] - 1] = True
    return SequenceTask(
        windows=windows,
        text_emb=text_emb,
        model_config=model_config,
        known=known,
        batch_size=sm.batch_size,
        shuffle_baskets=sm.shuffle_baskets,
        mask_seen=sm.mask_seen,
        seed=cfg.training.seed,
    )


def train_sequence_model(
    cfg: Config,
    sequences: Sequence[np.ndarray],
    text_emb: np.ndarray,
    name: str,
    epochs: int | None = None,
    *,
    timestamps: Sequence[np.ndarray] | None = None,
    fail_at_epoch: int | None = None,
) -> tuple[FitResult, dict]:
    """Train the text-aware sequence recommender with Ray Train.

    Args:
        cfg: Configuration: ``cfg.sequence_model`` (architecture, epochs, batch size,
            learning rate), ``cfg.ray`` (workers), ``cfg.training`` (seed, retries,
            checkpoints), ``cfg.runs_dir``.
        sequences: Per user, catalogue indices (0-based, oldest first).
        text_emb: Text embeddings of the catalogue, ``(n_items, text_dim)``
            (:func:`shoplake.text.encoder.encode_texts`).
        name: Run name, its folder under ``<runs_dir>/ray_results``.
        epochs: Overrides ``cfg.sequence_model.epochs``.
        timestamps: Per user, the time of each interaction in seconds (aligned with
            ``sequences``): recent targets weigh more (``recency_half_life_days``).
        fail_at_epoch: Tests only: worker 0 fails once after this epoch's checkpoint.

    Returns:
        The fit (``load_state()["model"]`` is the state dict) and the model config,
        which together with ``text_emb`` make a :class:`~shoplake.recommend.models.sasrec.SasrecScorer`.

    Raises:
        ValueError: See :func:`build_task`.
        ray.train.TrainingFailedError: Training failed more than ``max_failures`` times.
    """
    task = build_task(cfg, sequences, text_emb, timestamps)
    log.info(
        "sequence model %s: %d sequences, %d windows, %d items (%d with interactions)",
        name, len(sequences), len(task.windows), task.model_config["n_items"], int(task.known.sum()),
    )  # fmt: skip
    fitted = fit(cfg, task, name, epochs or cfg.sequence_model.epochs, lr=cfg.sequence_model.lr, fail_at_epoch=fail_at_epoch)
    return fitted, task.model_config
