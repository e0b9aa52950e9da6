"""The pretrained encoder fine-tuned with a classification head on Ray Train: tokens, batches, the model, training.

``fine_tuned`` (:class:`FineTunedClassifier`): the text encoder (all-MiniLM-L6-v2 by
default, :mod:`shoplake.text.encoder`) with a linear head on its mean-pooled token
states, every layer trained on Ray Train (:func:`train_fine_tuned`,
:class:`FineTuneTask` on :mod:`shoplake.train.loop`). ``embed`` is the fine-tuned
encoder's pooled state.

Tokens. Texts are tokenized once, padded to ``max_length`` (:func:`tokenize`); a
batch is then cut to its longest text (:func:`trim_batch`), so short messages do
not pay for the longest one.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from shoplake.text.classifier import (
    BUCKET_BATCHES,
    ENCODER_DIR,
    FINE_TUNED,
    HEAD_FILE,
    SETTINGS_FILE,
    _write_kind,
    label_index,
)
from shoplake.text.encoder import default_model_path, load_encoder, mean_pool

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------
# Tokens and batches
# ---------------------------------------------------------------------------


@dataclass
class Tokens:
    """Token ids and attention masks of texts, padded to one length, as int32 / int8 arrays."""

    input_ids: np.ndarray
    attention_mask: np.ndarray

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> np.ndarray:
        return self.attention_mask.sum(axis=1)

    def take(self, rows: np.ndarray) -> Tokens:
        return Tokens(self.input_ids[rows], self.attention_mask[rows])


def tokenize(tokenizer, texts: Sequence[str], max_length: int) -> Tokens:
    """Token ids of ``texts``, each cut to ``max_length`` tokens and padded to that length.

    Raises:
        ValueError: A text is not a non-empty string (its position is named).
    """
    for n, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(
                f"text {n} is {'blank' if isinstance(text, str) else type(text).__name__}: every text must be a non-empty string"
            )
    if not texts:
        return Tokens(np.zeros((0, max_length), np.int32), np.zeros((0, max_length), np.int8))
    out = tokenizer(list(texts), padding="max_length", truncation=True, max_length=max_length, return_tensors="np")
    return Tokens(out["input_ids"].astype(np.int32), out["attention_mask"].astype(np.int8))


def add_typos(text: str, rate: float, rng: np.random.Generator) -> str:
    """``text`` with a typo in about ``rate`` of its words of 4 letters or more.

    A typo is one of: a letter dropped, two neighbouring letters swapped, a letter
    doubled. Customers type like this; a word-piece model that never saw a misspelt
    word splits it into pieces it has not learnt to read.
    """
    if rate <= 0:
        return text
    words = text.split(" ")
    for n, word in enumerate(words):
        if len(word) < 4 or not word.isalpha() or rng.random() >= rate:
            continue
        at = int(rng.integers(1, len(word) - 1))
        kind = int(rng.integers(3))
        if kind == 0:
            words[n] = word[:at] + word[at + 1 :]
        elif kind == 1:
            words[n] = word[:at] + word[at + 1] + word[at] + word[at + 2 :]
        else:
            words[n] = word[: at + 1] + word[at:]
    return " ".join(words)


def trim_batch(tokens: Tokens) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` tensors cut to the longest text of the batch (padding is on the right)."""
    width = max(int(tokens.lengths.max()) if len(tokens) else 1, 1)
    return (
        torch.from_numpy(tokens.input_ids[:, :width].astype(np.int64)),
        torch.from_numpy(tokens.attention_mask[:, :width].astype(np.int64)),
    )


def epoch_batches(
    n: int, batch_size: int, epoch: int, rank: int, world_size: int, seed: int, lengths: np.ndarray | None = None
) -> list[np.ndarray]:
    """Row indices of one rank's batches in an epoch.

    The rows are shuffled the same way on every rank (by ``seed`` and ``epoch``), and
    rank ``r`` takes every ``world_size``-th row from ``r``; the rows a rank would have
    beyond the smallest rank's share are dropped, so every rank makes the same number
    of steps (data-parallel training waits for all ranks at each step).

    With ``lengths`` (tokens per row), each run of :data:`BUCKET_BATCHES` batches of
    the shuffled rows is sorted by length before it is cut, and the batches are then
    shuffled: a batch holds texts of similar length, so little of it is padding, while
    which texts meet in a batch still changes every epoch.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n)
    per_rank = n // world_size
    mine = order[rank::world_size][:per_rank]
    if lengths is not None:
        span = batch_size * BUCKET_BATCHES
        mine = (
            np.concatenate([chunk[np.argsort(lengths[chunk], kind="stable")] for chunk in np.split(mine, range(span, per_rank, span))])
            if per_rank
            else mine
        )
    batches = [mine[start : start + batch_size] for start in range(0, per_rank, batch_size)]
    if lengths is not None:
        # The same permutation on every rank keeps the ranks' batch counts and order of sizes aligned.
        batches = [batches[k] for k in np.random.default_rng([seed, epoch, 1]).permutation(len(batches))]
    return batches


# ---------------------------------------------------------------------------
# Fine-tuned encoder
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FineTuneSettings:
    """What a fine-tuned classifier needs besides its weights."""

    labels: tuple[str, ...]
    max_length: int
    dropout: float = 0.1
    freeze_embeddings: bool = False
    base_model: str = ""

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "labels": list(self.labels)})

    @classmethod
    def from_json(cls, text: str) -> FineTuneSettings:
        doc = json.loads(text)
        return cls(**{**doc, "labels": tuple(doc["labels"])})


def _load_transformer(path: str):
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    # A saved fine-tuned encoder has no pooler weights (below); transformers would report them missing.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        encoder = AutoModel.from_pretrained(path, local_files_only=True)
    finally:
        hf_logging.set_verbosity(verbosity)
    # Mean pooling reads the token states; BERT's pooler head would be a parameter without a
    # gradient, which data-parallel training refuses.
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None
    return encoder


class EncoderClassifier(nn.Module):
    """A transformer encoder, mean pooling over real tokens, dropout and a linear head."""

    def __init__(self, encoder: nn.Module, n_labels: int, dropout: float = 0.1, freeze_embeddings: bool = False):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(int(encoder.config.hidden_size), n_labels)
        if freeze_embeddings:
            # The word-piece table is half of MiniLM's weights; frozen, the optimizer skips it.
            for p in encoder.get_input_embeddings().parameters():
                p.requires_grad = False

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return mean_pool(hidden, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.pooled(input_ids, attention_mask)))


@dataclass
class FineTuneTask:
    """The :class:`~shoplake.train.loop.EpochTask` of fine-tuning: cross-entropy over the labels."""

    settings: FineTuneSettings
    model_path: str
    tokens: Tokens
    targets: np.ndarray
    batch_size: int
    seed: int = 0
    #: With ``typo_rate`` > 0, the raw texts: each epoch retokenizes them with fresh typos (:func:`add_typos`).
    texts: list[str] | None = None
    typo_rate: float = 0.0

    def build_model(self) -> nn.Module:
        torch.manual_seed(self.seed)
        return EncoderClassifier(
            _load_transformer(self.model_path), len(self.settings.labels), self.settings.dropout, self.settings.freeze_embeddings
        )

    def steps_per_epoch(self, world_size: int) -> int:
        return math.ceil((len(self.targets) // world_size) / self.batch_size)

    def batches(self, epoch: int, rank: int, world_size: int) -> Iterator[tuple[torch.Tensor, ...]]:
        lengths = self.tokens.lengths
        tokenizer = load_encoder(self.model_path)[0] if self.typo_rate > 0 else None
        rng = np.random.default_rng([self.seed, epoch, rank, 7])
        for rows in epoch_batches(len(self.targets), self.batch_size, epoch, rank, world_size, self.seed, lengths):
            if tokenizer is None:
                tokens = self.tokens.take(rows)
            else:
                tokens = tokenize(tokenizer, [add_typos(self.texts[r], self.typo_rate, rng) for r in rows], self.settings.max_length)
            ids, mask = trim_batch(tokens)
            yield ids, mask, torch.from_numpy(self.targets[rows])

    def loss(self, model: nn.Module, batch, generator: torch.Generator) -> tuple[torch.Tensor, int]:
        ids, mask, targets = batch
        logits = model(ids, mask)
        return nn.functional.cross_entropy(logits.float(), targets), len(targets)

    def artifacts(self) -> dict[str, str]:
        return {SETTINGS_FILE: self.settings.to_json()}


def _inference_batches(n: int, tokens: Tokens, batch_size: int) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
    # Texts of similar length together: less padding per batch.
    order = np.argsort(tokens.lengths, kind="stable")
    for start in range(0, n, batch_size):
        rows = order[start : start + batch_size]
        yield (rows, *trim_batch(tokens.take(rows)))


class FineTunedClassifier:
    """The fine-tuned encoder and head, for inference on the CPU (or the model's device)."""

    kind: ClassVar[str] = FINE_TUNED

    def __init__(self, settings: FineTuneSettings, model: EncoderClassifier, tokenizer, batch_size: int = 64):
        self.settings, self.model, self.tokenizer, self.batch_size = settings, model.eval(), tokenizer, batch_size

    @property
    def labels(self) -> tuple[str, ...]:
        return self.settings.labels

    @classmethod
    def from_state(cls, settings: FineTuneSettings, model_path: str, state: dict) -> FineTunedClassifier:
        """The classifier of a training checkpoint's model state, with the tokenizer of ``model_path``."""
        tokenizer, _ = load_encoder(model_path)
        model = EncoderClassifier(_load_transformer(model_path), len(settings.labels), settings.dropout)
        model.load_state_dict(state)
        return cls(settings, model, tokenizer)

    def predict_and_embed(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        tokens = tokenize(self.tokenizer, texts, self.settings.max_length)
        proba = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        emb = np.zeros((len(texts), int(self.model.encoder.config.hidden_size)), dtype=np.float32)
        with torch.inference_mode():
            for rows, ids, mask in _inference_batches(len(texts), tokens, self.batch_size):
                pooled = self.model.pooled(ids, mask)
                proba[rows] = torch.softmax(self.model.head(pooled).float(), dim=-1).numpy()
                emb[rows] = nn.functional.normalize(pooled, dim=-1).float().numpy()
        return proba, emb

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.predict_and_embed(texts)[0]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.predict_and_embed(texts)[1]

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.encoder.save_pretrained(folder / ENCODER_DIR)
        self.tokenizer.save_pretrained(folder / ENCODER_DIR)
        torch.save(self.model.head.state_dict(), folder / HEAD_FILE)
        (folder / SETTINGS_FILE).write_text(self.settings.to_json())
        _write_kind(folder, self)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> FineTunedClassifier:
        from transformers import AutoTokenizer

        folder = Path(folder)
        settings = FineTuneSettings.from_json((folder / SETTINGS_FILE).read_text())
        encoder_dir = str(folder / ENCODER_DIR)
        model = EncoderClassifier(_load_transformer(encoder_dir), len(settings.labels), settings.dropout)
        model.head.load_state_dict(torch.load(folder / HEAD_FILE, map_location="cpu", weights_only=True))
        return cls(settings, model, AutoTokenizer.from_pretrained(encoder_dir, local_files_only=True))


def train_fine_tuned(
    cfg,
    texts: Sequence[str],
    labels: Sequence[str],
    label_names: Sequence[str],
    name: str,
    *,
    model_path: str | None = None,
    typo_rate: float = 0.0,
) -> tuple[FineTunedClassifier, Any]:
    """Fine-tune the text encoder with a classification head on Ray Train.

    Args:
        cfg: ``fine_tuning`` (max length, epochs and the fewest steps, batch size, learning rate, warm-up,
            weight decay, dropout, mixed precision), ``ray`` (workers), ``training``
            (seed, retries, checkpoints), ``text_encoder.model_path``.
        texts: Training texts.
        labels: Their labels, each one of ``label_names``.
        label_names: The classes, in the order of the head's outputs.
        name: The Ray Train run's name (a new folder under ``<runs_dir>/ray_results``).
        model_path: The encoder to start from (default ``text_encoder.model_path``, else
            the packaged all-MiniLM-L6-v2).
        typo_rate: Share of training words given a typo each epoch (:func:`add_typos`).

    Returns:
        ``(classifier, fit_result)``; the fit result has the per-epoch loss history.
    """
    from shoplake.train.loop import fit

    ft = cfg.fine_tuning
    path = model_path or cfg.text_encoder.model_path or default_model_path()
    tokenizer, _ = load_encoder(path)
    settings = FineTuneSettings(tuple(label_names), ft.max_length, ft.dropout, ft.freeze_embeddings, str(path))
    task = FineTuneTask(
        settings, str(path), tokenize(tokenizer, texts, ft.max_length), label_index(label_names, labels), ft.batch_size,
        cfg.training.seed, list(texts) if typo_rate > 0 else None, typo_rate,
    )  # fmt: skip
    optimisation = {"weight_decay": ft.weight_decay, "warmup_ratio": ft.warmup_ratio, "amp": ft.amp, "max_grad_norm": ft.max_grad_norm}
    steps = max(task.steps_per_epoch(cfg.ray.num_workers), 1)
    epochs = max(ft.epochs, math.ceil(ft.min_steps / steps))
    if epochs > ft.epochs:
        log.info("fine-tuning %s: %d steps per epoch, so %d epochs for at least %d steps", name, steps, epochs, ft.min_steps)
    result = fit(cfg, task, name, epochs, lr=ft.lr, optimisation=optimisation)
    return FineTunedClassifier.from_state(settings, str(path), result.load_state()["model"]), result
