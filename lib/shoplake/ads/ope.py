"""Off-policy estimates of a new ad policy's value from the logged impressions alone.

Each logged impression ``i`` shows ad ``a_i`` in context ``x_i`` (viewer, placement,
slot), chosen by the shop's policy with probability ``mu_i`` (the logged propensity),
and earns reward ``r_i`` (a click, a conversion, or value minus cost). A new policy
gives the logged ad the probability ``pi_i = pi(a_i | x_i)``; a reward model predicts
``q_i`` (the logged ad's expected reward) and ``v_i = sum_a pi(a | x_i) q(x_i, a)``
(the new policy's expected reward in the context).

* **IPS** (inverse propensity scoring): the mean of ``w_i r_i`` with ``w_i = pi_i / mu_i``;
  unbiased when every ad the new policy may show has a positive logged propensity.
* **SNIPS**: the same weights normalised by their sum (a little bias, far less variance).
* **Doubly robust**: the mean of ``v_i + w_i (r_i - q_i)``; unbiased when either the
  propensities or the reward model are right, and of lower variance than IPS when the
  reward model is good.

Every estimate carries a percentile bootstrap interval over the impressions
(:func:`shoplake.evaluation.bootstrap_mean` and :func:`~shoplake.evaluation.bootstrap_statistic`).

**The margin over the logged policy** is judged as a paired difference: per impression,
the estimator's term minus the logged reward (``w_i r_i - r_i`` for IPS, ``v_i + w_i
(r_i - q_i) - r_i`` for DR; for SNIPS the self-normalised mean minus the logged mean),
bootstrapped over the same impressions (:func:`shoplake.evaluation.paired_difference`).
Where the new policy follows the logged one (``w_i`` near 1) the reward's own noise
cancels, so the interval of the difference is narrower than the two intervals side by
side suggest; the new policy "beats" the logged one only when it excludes zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shoplake.evaluation import Interval, bootstrap_mean, bootstrap_statistic, paired_difference


@dataclass(frozen=True)
class Estimates:
    """A policy's estimated value per impression, by estimator, the logged policy's own mean reward, and the margin between them."""

    logged: Interval
    ips: Interval
    snips: Interval
    dr: Interval
    #: The target policy's value minus the logged policy's per impression, by estimator, as paired differences.
    ips_margin: Interval
    snips_margin: Interval
    dr_margin: Interval
    #: Largest importance weight, and the effective number of impressions ``(sum w)^2 / sum w^2``.
    max_weight: float
    effective_n: float


def _arrays(reward, logged_propensity, target_propensity) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r = np.asarray(reward, dtype=np.float64)
    mu = np.asarray(logged_propensity, dtype=np.float64)
    pi = np.asarray(target_propensity, dtype=np.float64)
    if not (r.shape == mu.shape == pi.shape):
        raise ValueError(f"rewards, logged and target propensities differ in shape: {r.shape}, {mu.shape}, {pi.shape}")
    if (mu <= 0).any() or (mu > 1).any():
        raise ValueError("logged propensities must lie in (0, 1]")
    if (pi < 0).any() or (pi > 1).any():
        raise ValueError("target propensities must lie in [0, 1]")
    return r, mu, pi


def importance_weights(logged_propensity, target_propensity) -> np.ndarray:
    """``pi_i / mu_i`` of every logged impression."""
    _, mu, pi = _arrays(np.zeros_like(np.asarray(logged_propensity, dtype=float)), logged_propensity, target_propensity)
    return pi / mu


def ips(reward, logged_propensity, target_propensity) -> float:
    r, mu, pi = _arrays(reward, logged_propensity, target_propensity)
    return float(np.mean(pi / mu * r)) if len(r) else float("nan")


def _self_normalised(w: np.ndarray, r: np.ndarray) -> float:
    return (w * r).sum() / w.sum() if w.sum() > 0 else np.nan


def snips(reward, logged_propensity, target_propensity) -> float:
    r, mu, pi = _arrays(reward, logged_propensity, target_propensity)
    return float(_self_normalised(pi / mu, r))


def doubly_robust(reward, logged_propensity, target_propensity, predicted_logged, predicted_target) -> float:
    """``mean(v_i + w_i (r_i - q_i))``: ``predicted_logged`` is ``q_i``, ``predicted_target`` is ``v_i``."""
    r, mu, pi = _arrays(reward, logged_propensity, target_propensity)
    q, v = np.asarray(predicted_logged, dtype=np.float64), np.asarray(predicted_target, dtype=np.float64)
    return float(np.mean(v + pi / mu * (r - q))) if len(r) else float("nan")


def estimate(
    reward, logged_propensity, target_propensity, predicted_logged, predicted_target, *, draws: int = 1000, level: float = 0.95,
    seed: int = 0,
) -> Estimates:  # fmt: skip
    """Every estimate of the target policy's value per impression and of its margin over the logged policy, with bootstrap intervals.

    See the module docstring; the margins are paired differences over the same impressions.
    """
    r, mu, pi = _arrays(reward, logged_propensity, target_propensity)
    q, v = np.asarray(predicted_logged, dtype=np.float64), np.asarray(predicted_target, dtype=np.float64)
    w = pi / mu
    boot = {"draws": draws, "level": level, "seed": seed}
    dr_terms = v + w * (r - q)
    return Estimates(
        logged=bootstrap_mean(r, **boot),
        ips=bootstrap_mean(w * r, **boot),
        snips=bootstrap_statistic(_self_normalised, w, r, **boot),
        dr=bootstrap_mean(dr_terms, **boot),
        ips_margin=paired_difference(w * r, r, **boot),
        snips_margin=bootstrap_statistic(lambda ww, rr: _self_normalised(ww, rr) - rr.mean(), w, r, **boot),
        dr_margin=paired_difference(dr_terms, r, **boot),
        max_weight=float(w.max()) if len(w) else float("nan"),
        effective_n=float(w.sum() ** 2 / (w**2).sum()) if (w**2).sum() > 0 else 0.0,
    )
