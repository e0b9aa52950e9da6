"""Matrix factorization for implicit feedback: the collaborative-filtering baseline.

A user u and an item i each get an embedding and a bias; the score of the pair is
``<p_u, q_i> + b_u + b_i + b``, read as the logit of "u interacts with i". Training
uses a weighted logistic loss: observed pairs are positives whose confidence grows
with their implicit-feedback weight (``1 + log1p(weight)``, as in Hu, Koren and
Volinsky's implicit ALS), and items drawn uniformly at random are negatives.

:class:`IdMap` turns the lake's string ids into the contiguous integers an
embedding table needs, and back; it is saved beside the model weights.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class IdMap:
    """String ids <-> contiguous ints ``0..n-1``, in a fixed order.

    Args:
        ids: The distinct ids, in the order that defines their integers.

    Raises:
        ValueError: An id occurs twice.
    """

    def __init__(self, ids: Sequence[str]):
        self.ids: list[str] = [str(i) for i in ids]
        self._index = {value: n for n, value in enumerate(self.ids)}
        if len(self._index) != len(self.ids):
            raise ValueError("IdMap ids must be distinct")

    @classmethod
    def fit(cls, values: Iterable[str]) -> IdMap:
        """Map the distinct values, sorted, so that the same data gives the same map."""
        return cls(sorted({str(v) for v in values}))

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, value: str) -> bool:
        return value in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self.ids == other.ids

    def encode(self, values: Iterable[str]) -> list[int]:
        """Integers of ``values``.

        Raises:
            KeyError: A value is not in the map (named in the message).
        """
        try:
            return [self._index[v] for v in values]
        except KeyError as exc:
            raise KeyError(f"id {exc.args[0]!r} is not in the IdMap ({len(self)} ids)") from None

    def lookup(self, values: Iterable[str], missing: int = -1) -> np.ndarray:
        """Integers of ``values`` as an int64 array; ``missing`` for values not in the map."""
        return np.array([self._index.get(str(v), missing) for v in values], dtype=np.int64)

    def decode(self, indices: Iterable[int]) -> list[str]:
        """String ids of ``indices``."""
        return [self.ids[int(i)] for i in indices]

    def to_json(self) -> str:
        return json.dumps({"ids": self.ids})

    @classmethod
    def from_json(cls, text: str) -> IdMap:
        return cls(json.loads(text)["ids"])


class MatrixFactorization(nn.Module):
    """User and item embeddings plus biases; ``forward`` returns logits of pairs.

    Args:
        n_users: Rows of the user table.
        n_items: Rows of the item table.
        dim: Embedding size.
        init_std: Standard deviation of the initial embeddings; small, so that the
            first scores are near the global bias.
    """

    def __init__(self, n_users: int, n_items: int, dim: int = 32, init_std: float = 0.1):
        super().__init__()
        self.n_users, self.n_items, self.dim = n_users, n_items, dim
        self.user_emb = nn.Embedding(n_users, dim)
        self.item_emb = nn.Embedding(n_items, dim)
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        self.global_bias = nn.Parameter(torch.zeros(1))
        nn.init.normal_(self.user_emb.weight, std=init_std)
        nn.init.normal_(self.item_emb.weight, std=init_std)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Logits of the pairs ``(users[k], items[k])``, shape ``(len(users),)``."""
        p, q = self.user_emb(users), self.item_emb(items)
        return (p * q).sum(-1) + self.user_bias(users).squeeze(-1) + self.item_bias(items).squeeze(-1) + self.global_bias

    def l2(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Mean squared norm of the embeddings and biases of these pairs."""
        parts = (self.user_emb(users), self.item_emb(items), self.user_bias(users), self.item_bias(items))
        return sum(t.pow(2).sum(-1).mean() for t in parts)


def confidence(weight: torch.Tensor) -> torch.Tensor:
    """Confidence of an observed pair: ``1 + log1p(weight)``.

    The log keeps a user who viewed an item a hundred times from outweighing
    everyone else; weights below zero are treated as zero.
    """
    return 1.0 + torch.log1p(weight.clamp(min=0))


def implicit_loss(pos_logits: torch.Tensor, neg_logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted logistic loss of positives and sampled negatives.

    Args:
        pos_logits: Logits of observed pairs, shape ``(n,)``.
        neg_logits: Logits of sampled pairs, any shape (``(n, k)`` for k per positive);
            may be empty.
        weights: Implicit-feedback weights of the observed pairs, shape ``(n,)``.

    Returns:
        The confidence-weighted mean of ``-log sigmoid(pos)`` plus the mean of
        ``-log sigmoid(-neg)``, a scalar.
    """
    c = confidence(weights)
    loss = (c * F.softplus(-pos_logits)).sum() / c.sum()
    if neg_logits.numel():
        loss = loss + F.softplus(neg_logits).mean()
    return loss


def sample_negatives(n: int, k: int, n_items: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``(n, k)`` item indices drawn uniformly.

    A draw may hit an item the user did interact with; with many items that is rare,
    and filtering it out would cost a lookup per draw.
    """
    return torch.randint(0, n_items, (n, k), generator=generator)


def mf_step_loss(
    model: nn.Module,
    users: torch.Tensor,
    items: torch.Tensor,
    weights: torch.Tensor,
    n_items: int,
    negatives: int,
    weight_decay: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Loss of one batch of positive pairs, with ``negatives`` sampled items per pair.

    Positives and negatives go through one forward call, which is what
    DistributedDataParallel expects of a step.

    Args:
        model: A :class:`MatrixFactorization`, possibly wrapped (DDP).
        users: User indices of the positive pairs.
        items: Item indices of the positive pairs.
        weights: Implicit-feedback weights of the pairs.
        n_items: Size of the item table (the range negatives are drawn from).
        negatives: Negatives per positive.
        weight_decay: L2 penalty on the rows the batch touches.
        generator: Random source for the negatives.
    """
    n = users.shape[0]
    # Drawn on the CPU (where the generator lives), then moved to the batch's device.
    neg_items = sample_negatives(n, negatives, n_items, generator).to(users.device)
    all_users = torch.cat([users, users.repeat_interleave(negatives)])
    all_items = torch.cat([items, neg_items.reshape(-1)])
    logits = model(all_users, all_items)
    loss = implicit_loss(logits[:n], logits[n:], weights)
    if weight_decay:
        core = model.module if hasattr(model, "module") else model
        loss = loss + weight_decay * core.l2(all_users, all_items)
    return loss
