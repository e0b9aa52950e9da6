"""The main recommender: a SASRec-style transformer over item sequences, fused with item text.

A user's history (items, oldest first) goes through causal self-attention blocks
(Kang and McAuley, "Self-Attentive Sequential Recommendation", 2018); the hidden
state at the last position, multiplied with every item's representation, gives the
logits of the next item over the whole catalogue. Input and output item
representations are the same (tied):

    item(i) = known(i) * id_embedding(i) + text_projection(text_embedding(i))

``text_embedding`` is the frozen sentence embedding of the item's title and
description (:mod:`shoplake.text.encoder`). ``known(i)`` is 1 for items that
occur in the training sequences and 0 for the others: an item nobody has bought yet
has an id embedding that was never trained, so it is represented by its text alone,
and it is still ranked by how close its text is to what the user's history
predicts. During training an item's id embedding is also dropped with probability
``id_dropout``, which teaches the text projection to carry the signal on its own.
With ``item_bias`` each logit also gets ``known(i) * b_i + w . text_embedding(i)``:
how likely an item is next whatever the history (what sells now), for a new item
judged from its text.

Token convention (inside the model): ``0`` is padding, ``1..n_items`` are the
catalogue items ``0..n_items-1`` shifted by one, and ``n_items + 1`` marks the
start of a user's history (so that an empty history still has a position to
predict from). Callers of :class:`SasrecScorer` and :func:`encode_histories` use
plain 0-based catalogue indices; the shift happens here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from shoplake.recommend.models.adjust import adjust_scores
from shoplake.recommend.models.scorers import EaseScorer

log = logging.getLogger(__name__)

PAD = 0
#: The file :meth:`SasrecScorer.save` writes.
SCORER_FILE = "sasrec.pt"


def dedupe_index(items: np.ndarray, mode: str) -> np.ndarray:
    """Positions of ``items`` that remain once repeats are removed, in order.

    Args:
        items: Catalogue indices, oldest first.
        mode: ``"none"`` keeps every occurrence; ``"first"`` keeps each item where
            it first occurred (the order in which the user discovered items);
            ``"last"`` keeps its most recent occurrence.

    Returns:
        int64 positions into ``items``, ascending.

    Raises:
        ValueError: Unknown ``mode``.
    """
    items = np.asarray(items, dtype=np.int64).ravel()
    if mode == "none" or items.size == 0:
        return np.arange(items.size, dtype=np.int64)
    if mode == "first":
        _, first = np.unique(items, return_index=True)
        return np.sort(first).astype(np.int64)
    if mode == "last":
        _, last = np.unique(items[::-1], return_index=True)
        return np.sort(items.size - 1 - last).astype(np.int64)
    raise ValueError(f"dedupe must be 'none', 'first' or 'last', got {mode!r}")


def dedupe_history(items: np.ndarray, mode: str) -> np.ndarray:
    """A history with repeated items removed (see :func:`dedupe_index` for ``mode``).

    Returns:
        int64 catalogue indices, oldest first.
    """
    items = np.asarray(items, dtype=np.int64).ravel()
    return items[dedupe_index(items, mode)]


def encode_histories(histories: Sequence[np.ndarray], max_len: int, n_items: int, dedupe: str = "none") -> torch.Tensor:
    """Model input tokens of users' histories, left-padded to ``max_len``.

    A history that fits, with room for the start token, is written as
    ``[start, items...]``; a longer one keeps its ``max_len`` most recent items.

    Args:
        histories: Per user, catalogue indices (0-based, oldest first).
        max_len: Positions the model reads.
        n_items: Catalogue size (the start token is ``n_items + 1``).
        dedupe: How repeats are removed first (see :func:`dedupe_history`).

    Returns:
        int64 tokens, shape ``(len(histories), max_len)``.

    Raises:
        ValueError: An index is outside ``[0, n_items)``.
    """
    tokens = torch.zeros((len(histories), max_len), dtype=torch.int64)
    for row, history in enumerate(histories):
        items = dedupe_history(history, dedupe)
        if items.size and (items.min() < 0 or items.max() >= n_items):
            raise ValueError(f"history {row} has item indices outside [0, {n_items})")
        seq = items[-max_len:] + 1 if items.size >= max_len else np.concatenate([[n_items + 1], items + 1])
        tokens[row, max_len - len(seq) :] = torch.from_numpy(np.asarray(seq, dtype=np.int64))
    return tokens


class TextAwareSASRec(nn.Module):
    """Causal transformer over item tokens with text-fused, tied item representations.

    Args:
        n_items: Catalogue size.
        text_emb: Frozen text embeddings of the catalogue items, shape
            ``(n_items, text_dim)``; with ``text_fusion`` False only its shape is used
            (pass zeros of any width).
        known: Items with training interactions (bool, ``(n_items,)``); the id
            embedding of the others is never used. None: all known.
        max_len: Positions the model reads.
        dim: Hidden size (divisible by ``heads``).
        layers: Transformer blocks.
        heads: Attention heads.
        dropout: Dropout in the blocks and on the input.
        text_fusion: Add the projected text embedding to each item's representation.
        id_dropout: Training only: probability of dropping an item's id embedding
            in a step (the text projection must then stand for it).
        item_bias: Add a per-item logit bias (learnt per known item, plus a linear
            function of the text): how likely an item is next whatever the history.
    """

    def __init__(
        self,
        n_items: int,
        text_emb: np.ndarray | torch.Tensor,
        known: np.ndarray | torch.Tensor | None = None,
        *,
        max_len: int = 50,
        dim: int = 64,
        layers: int = 2,
        heads: int = 2,
        dropout: float = 0.2,
        text_fusion: bool = True,
        id_dropout: float = 0.0,
        item_bias: bool = False,
    ):
        super().__init__()
        text = torch.tensor(np.asarray(text_emb, dtype=np.float32))  # a copy: Ray hands read-only arrays
        if text.shape[0] != n_items:
            raise ValueError(f"text_emb has {text.shape[0]} rows for {n_items} items")
        self.n_items, self.max_len, self.dim = n_items, max_len, dim
        self.text_fusion, self.id_dropout = text_fusion, id_dropout
        self.start_token = n_items + 1
        known_t = torch.ones(n_items, dtype=torch.bool) if known is None else torch.as_tensor(np.asarray(known, dtype=bool))
        # Row 0 (padding) and the start token carry no text and are always "known".
        self.register_buffer("known", torch.cat([torch.ones(1, dtype=torch.bool), known_t, torch.ones(1, dtype=torch.bool)]))
        # A frozen parameter rather than a buffer: DDP broadcasts buffers on every
        # forward pass but parameters only once, and this table never changes.
        pad_row = torch.zeros(1, text.shape[1])
        self.text_table = nn.Parameter(torch.cat([pad_row, text, pad_row]), requires_grad=False)
        self.item_emb = nn.Embedding(n_items + 2, dim, padding_idx=PAD)
        nn.init.normal_(self.item_emb.weight, std=1.0 / math.sqrt(dim))
        with torch.no_grad():
            self.item_emb.weight[PAD].zero_()
        self.text_proj = nn.Linear(text.shape[1], dim) if text_fusion else None
        self.pos_emb = nn.Embedding(max_len, dim)
        nn.init.normal_(self.pos_emb.weight, std=1.0 / math.sqrt(dim))
        self.input_dropout = nn.Dropout(dropout)
        block = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=4 * dim, dropout=dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(dim)
        self.heads = heads
        self.id_bias = nn.Embedding(n_items + 2, 1) if item_bias else None
        self.text_bias = nn.Linear(text.shape[1], 1) if item_bias and text_fusion else None
        if self.id_bias is not None:
            nn.init.zeros_(self.id_bias.weight)

    def id_keep(self) -> torch.Tensor:
        """Which tokens use their id embedding and bias now (bool, ``(n_items + 2,)``).

        The known items; in training, each also dropped with probability ``id_dropout``.
        """
        keep = self.known
        if self.training and self.id_dropout > 0:
            keep = keep & (torch.rand(keep.shape, device=keep.device) >= self.id_dropout)
        return keep

    def item_representations(self, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Representations of all ``n_items + 2`` tokens, shape ``(n_items + 2, dim)``.

        Args:
            keep: From :meth:`id_keep` (drawn anew when None).
        """
        keep = self.id_keep() if keep is None else keep
        rep = self.item_emb.weight * keep.unsqueeze(-1).to(self.item_emb.weight.dtype)
        if self.text_proj is not None:
            rep = rep + self.text_proj(self.text_table)
        return rep

    def _attention_mask(self, tokens: torch.Tensor) -> torch.Tensor:
        """Bool mask ``(batch * heads, L, L)``, True where a query may not attend a key.

        Causal, and padding keys are hidden; each position may always attend to
        itself, so that padding rows are not fully masked (which would give NaN).
        """
        length = tokens.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=tokens.device).triu(1)
        mask = causal.unsqueeze(0) | (tokens == PAD).unsqueeze(1)
        mask = mask & ~torch.eye(length, dtype=torch.bool, device=tokens.device).unsqueeze(0)
        return mask.repeat_interleave(self.heads, dim=0)

    def hidden(self, tokens: torch.Tensor, item_rep: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states of every position, shape ``(batch, L, dim)``.

        Args:
            tokens: Left-padded input tokens, shape ``(batch, L)`` with ``L <= max_len``;
                positions count from the right, so the last token always has
                position ``max_len - 1``.
            item_rep: Precomputed :meth:`item_representations` of all tokens (one
                id-dropout draw shared by input and output in a training step).
        """
        length = tokens.shape[1]
        if length > self.max_len:
            raise ValueError(f"sequences of {length} tokens exceed max_len {self.max_len}")
        x = (item_rep if item_rep is not None else self.item_representations())[tokens]
        positions = torch.arange(self.max_len - length, self.max_len, device=tokens.device)
        x = self.input_dropout(x + self.pos_emb(positions).unsqueeze(0))
        x = x * (tokens != PAD).unsqueeze(-1).to(x.dtype)
        x = self.encoder(x, mask=self._attention_mask(tokens))
        return self.final_norm(x)

    def logits(
        self, hidden: torch.Tensor, rep: torch.Tensor, candidates: torch.Tensor | None = None, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Scores of the catalogue (or of ``candidates``) from hidden states ``(..., dim)``.

        Args:
            hidden: Hidden states.
            rep: :meth:`item_representations` of all tokens.
            candidates: Catalogue indices to score; None: all items.
            keep: From :meth:`id_keep`, the same draw as ``rep``'s; None: the known items.

        Returns:
            Shape ``(..., n_candidates)``.
        """
        tokens = torch.arange(1, self.n_items + 1, device=rep.device) if candidates is None else candidates + 1
        out = hidden @ rep[tokens].T
        if self.id_bias is not None:
            keep = self.known if keep is None else keep
            bias = self.id_bias(tokens).squeeze(-1) * keep[tokens].to(out.dtype)
            if self.text_bias is not None:
                bias = bias + self.text_bias(self.text_table[tokens]).squeeze(-1)
            out = out + bias
        return out

    def forward(self, tokens: torch.Tensor, select: torch.Tensor | None = None, candidates: torch.Tensor | None = None) -> torch.Tensor:
        """Next-item logits.

        Args:
            tokens: Left-padded input tokens, shape ``(batch, L)``.
            select: Positions to score (bool, ``(batch, L)``); None: all of them.
            candidates: Catalogue indices of the items to score; None: the whole catalogue.

        Returns:
            Shape ``(batch, L, n_candidates)``, or ``(n_selected, n_candidates)`` with ``select``.
        """
        keep = self.id_keep()
        rep = self.item_representations(keep)
        hidden = self.hidden(tokens, rep)
        if select is not None:
            hidden = hidden[select]
        return self.logits(hidden, rep, candidates, keep)

    def score_last(self, tokens: torch.Tensor) -> torch.Tensor:
        """Next-item logits after the last position of each row, shape ``(batch, n_items)``."""
        rep = self.item_representations()
        return self.logits(self.hidden(tokens, rep)[:, -1], rep)


def seen_mask(inputs: torch.Tensor, select: torch.Tensor, n_items: int, candidates: torch.Tensor | None = None) -> torch.Tensor:
    """Which candidates each selected position has already seen in its window.

    Args:
        inputs: Input tokens, shape ``(batch, L)``.
        select: The positions scored (bool, ``(batch, L)``).
        n_items: Catalogue size.
        candidates: Sorted catalogue indices of the scored items; None: all items.

    Returns:
        Bool, ``(n_selected, n_candidates)``: True where the candidate occurs at or
        before the position in its row.
    """
    n_cand = n_items if candidates is None else len(candidates)
    # Token -> column of the candidate; tokens that are no candidate (padding, start,
    # items outside the candidates) go to a spare last column that is cut off.
    column = torch.full((n_items + 2,), n_cand, dtype=torch.int64, device=inputs.device)
    cand_tokens = torch.arange(1, n_items + 1, device=inputs.device) if candidates is None else candidates + 1
    column[cand_tokens] = torch.arange(n_cand, device=inputs.device)
    length = inputs.shape[1]
    rows, positions = select.nonzero(as_tuple=True)
    later = torch.arange(length, device=inputs.device).unsqueeze(0) > positions.unsqueeze(1)
    cols = column[inputs[rows]].masked_fill(later, n_cand)
    mask = torch.zeros((len(rows), n_cand + 1), dtype=torch.bool, device=inputs.device)
    return mask.scatter_(1, cols, True)[:, :n_cand]


def sequence_loss(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    candidates: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
    mask_seen: bool = False,
) -> tuple[torch.Tensor, int]:
    """Full-softmax cross-entropy of the next item at every position that has one.

    Args:
        model: A :class:`TextAwareSASRec`, possibly wrapped (DDP): one forward call per step.
        inputs: Input tokens, shape ``(batch, L)``.
        targets: Next tokens (``PAD`` where there is nothing to predict), same shape.
        candidates: Sorted catalogue indices of the items in the softmax; every target
            must be one of them. None: the whole catalogue.
        weights: Weight of each target, same shape (e.g. by recency); None: equal.
        mask_seen: Leave the items a position has already seen in its window out
            of its softmax (except its target), as ranking with the user's history
            excluded does; otherwise the model spends itself learning that bought
            items are not bought again and pushes similar items down with them.

    Returns:
        The (weighted) mean loss over predicted positions and their number.
    """
    select = targets != PAD
    target_items = targets[select] - 1  # tokens -> catalogue indices
    logits = model(inputs, select, candidates)
    if candidates is not None:
        target_items = torch.searchsorted(candidates, target_items)
    if mask_seen:
        core = model.module if hasattr(model, "module") else model
        seen = seen_mask(inputs, select, core.n_items, candidates)
        seen[torch.arange(len(target_items), device=seen.device), target_items] = False
        logits = logits.masked_fill(seen, float("-inf"))
    n = int(target_items.numel())
    losses = F.cross_entropy(logits, target_items, reduction="none")
    if weights is None:
        return losses.sum() / max(n, 1), n
    w = weights[select].to(losses.dtype)
    return (losses * w).sum() / w.sum().clamp(min=1e-12), n


def build_model(model_config: dict, text_emb: np.ndarray, known: np.ndarray | None = None) -> TextAwareSASRec:
    """A :class:`TextAwareSASRec` from its config dict (as saved with the weights)."""
    return TextAwareSASRec(
        int(model_config["n_items"]),
        text_emb,
        known,
        max_len=int(model_config["max_len"]),
        dim=int(model_config["dim"]),
        layers=int(model_config["layers"]),
        heads=int(model_config["heads"]),
        dropout=float(model_config["dropout"]),
        text_fusion=bool(model_config["text_fusion"]),
        id_dropout=float(model_config.get("id_dropout", 0.0)),
        item_bias=bool(model_config.get("item_bias", False)),
    )


class SasrecScorer:
    """A trained :class:`TextAwareSASRec` wrapped for inference on the CPU.

    Args:
        model_config: The model's settings (``n_items``, ``max_len``, ``dim``,
            ``layers``, ``heads``, ``dropout``, ``text_fusion``, ``dedupe``, ...),
            as returned with the weights by training; ``cold_boost``, ``blend``
            (the weight of ``prior``) and ``ease_blend`` (the weight of ``partner``) adjust the
            scores (:func:`~shoplake.recommend.models.adjust.adjust_scores`), 0 by default.
        state_dict: The trained weights (``known`` and the text table included).
        text_emb: Text embeddings of the catalogue, ``(n_items, text_dim)``.
        batch_size: Users per forward pass in :meth:`score`.
        prior: Counts per item (what sells now) mixed into the scores; None: no mixture.
        partner: A model scoring the same histories (EASE) whose scores are mixed in; None: no mixture.
    """

    kind = "sasrec"

    def __init__(self, model_config: dict, state_dict: dict, text_emb: np.ndarray, batch_size: int = 512,
                 prior: np.ndarray | None = None, partner: EaseScorer | None = None):  # fmt: skip
        self.model_config = dict(model_config)
        self.text_emb = np.asarray(text_emb, dtype=np.float32)
        self.n_items = int(model_config["n_items"])
        self.batch_size = batch_size
        self.prior = None if prior is None else np.asarray(prior, dtype=np.float64)
        self.partner = partner
        self.model = build_model(self.model_config, self.text_emb)
        state = dict(state_dict)
        # The text table may be left out of a saved state: it is rebuilt from text_emb.
        state.setdefault("text_table", self.model.text_table.detach().clone())
        self.model.load_state_dict(state)
        self.model.eval()

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        """Next-item scores of every catalogue item for each user.

        Args:
            users: User indices (unused: the model reads only the histories; -1 for
                unknown users is fine).
            histories: Per user, catalogue indices of everything known about the
                user, oldest first; an empty history scores from the start token
                alone (what users buy first).

        Returns:
            float32 logits, shape ``(len(users), n_items)``.

        Raises:
            ValueError: ``users`` and ``histories`` differ in length.
        """
        if len(users) != len(histories):
            raise ValueError(f"{len(users)} users but {len(histories)} histories")
        out = np.empty((len(histories), self.n_items), dtype=np.float32)
        max_len, dedupe = int(self.model_config["max_len"]), str(self.model_config.get("dedupe", "none"))
        with torch.no_grad():
            rep = self.model.item_representations()
            for start in range(0, len(histories), self.batch_size):
                tokens = encode_histories(histories[start : start + self.batch_size], max_len, self.n_items, dedupe)
                out[start : start + len(tokens)] = self.model.logits(self.model.hidden(tokens, rep)[:, -1], rep).numpy()
        cold_boost, blend = float(self.model_config.get("cold_boost", 0.0)), float(self.model_config.get("blend", 0.0))
        partner_blend = float(self.model_config.get("ease_blend", 0.0)) if self.partner is not None else 0.0
        if cold_boost or (blend > 0 and self.prior is not None) or partner_blend > 0:
            partner = self.partner.score(users, histories) if partner_blend > 0 else None
            return adjust_scores(out, self.unknown(), cold_boost, self.prior, blend, partner, partner_blend).astype(np.float32)
        return out

    def unknown(self) -> np.ndarray:
        """Bool per item: the model saw no interaction of it in training (it is represented by its text alone)."""
        return ~self.model.known[1 : self.n_items + 1].numpy()

    def with_settings(self, prior: np.ndarray | None, partner: EaseScorer | None = None, **settings) -> SasrecScorer:
        """The same model with score-time settings (``cold_boost``, ``blend`` of ``prior``, ``ease_blend`` of ``partner``) recorded in its config."""
        config = {**self.model_config, **settings}
        return SasrecScorer(config, self.model.state_dict(), self.text_emb, self.batch_size, prior, partner)

    def item_vectors(self) -> np.ndarray:
        """Item representations (id + text), shape ``(n_items, dim)``, for cosine similar-items search."""
        with torch.no_grad():
            return self.model.item_representations()[1 : self.n_items + 1].numpy().astype(np.float32)

    def save(self, folder: Path) -> None:
        """Write ``sasrec.pt`` (config, weights, text embeddings) into ``folder``, and the partner's own file."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v for k, v in self.model.state_dict().items() if k != "text_table"}
        saved = {"model_config": self.model_config, "state_dict": state, "text_emb": torch.from_numpy(self.text_emb)}
        if self.prior is not None:
            saved["prior"] = torch.from_numpy(self.prior)
        torch.save(saved, folder / SCORER_FILE)
        if self.partner is not None:
            self.partner.save(folder)

    @classmethod
    def load(cls, folder: Path) -> SasrecScorer:
        """The scorer :meth:`save` wrote into ``folder``."""
        saved = torch.load(Path(folder) / SCORER_FILE, map_location="cpu", weights_only=True)
        text_emb = saved["text_emb"].numpy()
        prior = saved["prior"].numpy() if "prior" in saved else None
        partner = EaseScorer.load(folder) if (Path(folder) / EaseScorer.FILE).is_file() else None
        return cls(saved["model_config"], saved["state_dict"], text_emb, prior=prior, partner=partner)
