"""Score-time adjustments of a next-item model's logits: new items lifted, priors such as trending counts or EASE mixed in.

Neither needs the network: they apply to logits already computed, so the validation
splits can try every candidate setting on one fit, and the served scorer applies
the chosen one.
"""

from __future__ import annotations

import numpy as np


def blend_with_prior(logits: np.ndarray, prior: np.ndarray, weight: float) -> np.ndarray:
    """The model's next-item probabilities mixed with a prior's shares, as log-probabilities.

    ``log((1 - weight) * softmax(logits) + weight * prior / prior.sum())`` per row:
    with ``weight`` 0 the ranking is the model's, with 1 the prior's (a trending
    count, say). An item the prior has never seen keeps the model's share.

    Args:
        logits: Scores, shape ``(n_users, n_items)``.
        prior: Non-negative counts, ``(n_items,)`` or one row per user.
        weight: The prior's share of the mixture, in ``[0, 1]``.

    Raises:
        ValueError: ``weight`` outside ``[0, 1]``.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the prior's weight must lie in [0, 1], got {weight}")
    logits = np.asarray(logits, dtype=np.float64)
    if weight == 0.0:
        return logits
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    prior = np.broadcast_to(np.asarray(prior, dtype=np.float64), logits.shape)
    totals = prior.sum(axis=1, keepdims=True)
    share = np.divide(prior, totals, out=np.zeros_like(prior), where=totals > 0)
    # The smallest positive float keeps log() finite where both shares are 0.
    return np.log((1.0 - weight) * p + weight * share + np.finfo(np.float64).tiny)


def adjust_scores(logits: np.ndarray, unknown: np.ndarray, cold_boost: float = 0.0, prior: np.ndarray | None = None,
                  blend: float = 0.0, partner: np.ndarray | None = None, partner_blend: float = 0.0) -> np.ndarray:  # fmt: skip
    """The served scores from the network's logits: new items boosted, then a prior mixed in, then a partner model.

    Args:
        logits: The network's next-item logits, ``(n_users, n_items)``.
        unknown: Bool per item: no training interaction (a new listing, represented by its text alone).
        cold_boost: Added to the logit of every unknown item: its probability times ``exp(cold_boost)``.
            The network learns what sells from interactions a new item does not have yet;
            the validation splits measure how much a new listing should be lifted.
        prior: Counts per item (or one row per user) mixed in with :func:`blend_with_prior`.
        blend: The prior's share of the mixture.
        partner: Another model's scores of the same users, ``(n_users, n_items)`` (EASE's, say); its
            positive part, as shares per user, is mixed into the result with :func:`blend_with_prior`.
        partner_blend: The partner's share of that mixture.
    """
    out = np.asarray(logits, dtype=np.float64)
    if cold_boost:
        out = out + cold_boost * np.asarray(unknown, dtype=np.float64)
    if blend > 0 and prior is not None:
        out = blend_with_prior(out, prior, blend)
    if partner_blend > 0 and partner is not None:
        out = blend_with_prior(out, np.maximum(np.asarray(partner, dtype=np.float64), 0.0), partner_blend)
    return out
