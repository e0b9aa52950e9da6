"""The evaluation protocol every use case follows.

Every run splits its data by time into train, validation and test. Every candidate,
the baselines included, is fitted on train; the champion is the candidate with the
best validation score (:func:`pick_champion`), or, where a use case asks for it,
the simplest candidate whose validation score is within noise of the best
(:func:`pick_simplest_within_noise`: a paired version of the one-standard-error rule,
which keeps a search's lucky draw from being served over a simpler model it did not
beat); test is scored once, reported, and never used to choose anything. Every
reported figure carries a bootstrap interval over the evaluated units (users,
items, payments, messages), and a candidate "beats" another only when the interval
of their paired difference excludes zero (:func:`paired_difference`,
:meth:`Interval.verdict`).

The intervals are percentile bootstraps from :func:`scipy.stats.bootstrap`; the
draws, confidence level and seed come from ``evaluation.*`` in the configuration.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: The names of the time-ordered splits.
TRAIN, VALIDATION, TEST = "train", "validation", "test"
#: How the tables print the held-out splits.
SPLIT_LABELS = {VALIDATION: "valid", TEST: "test"}


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap confidence interval."""

    value: float
    low: float
    high: float

    def excludes(self, null: float = 0.0) -> bool:
        return self.low > null or self.high < null

    def excludes_zero(self) -> bool:
        return self.excludes(0.0)

    def verdict(self, higher_is_better: bool = True, null: float = 0.0) -> str:
        """``win``, ``loss`` or ``within noise`` for ``a`` against ``b``.

        The interval is of a difference ``a - b`` (``null`` 0) or of a ratio ``a / b``
        (``null`` 1); ``higher_is_better`` is the metric's direction.
        """
        if not self.excludes(null):
            return "within noise"
        better = self.value > null if higher_is_better else self.value < null
        return "win" if better else "loss"

    def __str__(self) -> str:
        return f"{self.value:.3f} ({self.low:.3f}..{self.high:.3f})"


NAN_INTERVAL = Interval(math.nan, math.nan, math.nan)


def _bootstrap(samples: tuple[np.ndarray, ...], statistic, draws: int, level: float, seed: int) -> tuple[float, float]:
    from scipy.stats import bootstrap

    res = bootstrap(samples, statistic, paired=True, vectorized=True, n_resamples=draws, confidence_level=level,
                    method="percentile", rng=np.random.default_rng(seed))  # fmt: skip
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _weighted_mean(values: np.ndarray, weights: np.ndarray, axis: int = -1) -> np.ndarray:
    return (values * weights).sum(axis=axis) / weights.sum(axis=axis)


def _clean(values, weights) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(values, dtype=np.float64)
    weights = np.ones_like(values) if weights is None else np.asarray(weights, dtype=np.float64)
    if values.shape != weights.shape:
        raise ValueError(f"values have shape {values.shape}, weights {weights.shape}")
    keep = ~np.isnan(values) & (weights > 0)
    return values[keep], weights[keep]


def bootstrap_mean(values: Sequence[float] | np.ndarray, weights=None, *, draws: int = 1000, level: float = 0.95,
                   seed: int = 0) -> Interval:  # fmt: skip
    """The (weighted) mean of per-unit values with its percentile bootstrap interval.

    NaN values and units of zero weight are left out; with fewer than two units left
    the interval is the point itself (or NaN when there is none).
    """
    values, weights = _clean(values, weights)
    if values.size == 0:
        return NAN_INTERVAL
    point = float(_weighted_mean(values, weights))
    if values.size < 2 or np.all(values == values[0]):
        return Interval(point, point, point)
    low, high = _bootstrap((values, weights), lambda v, w, axis=-1: _weighted_mean(v, w, axis), draws, level, seed)
    return Interval(point, low, high)


def paired_difference(a, b, weights=None, *, draws: int = 1000, level: float = 0.95, seed: int = 0) -> Interval:
    """Mean of ``a - b`` over the same units, with its bootstrap interval (both resampled together)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values differ in shape: {a.shape} vs {b.shape}")
    return bootstrap_mean(a - b, weights, draws=draws, level=level, seed=seed)


def ratio_of_sums(num_a, num_b, weights=None, *, draws: int = 1000, level: float = 0.95, seed: int = 0) -> Interval:
    """``sum(w * a) / sum(w * b)`` over the same units, with its bootstrap interval.

    The ratio of two models' weighted errors (below 1: ``a`` errs less); units where
    either is NaN are left out.
    """
    a, b = np.asarray(num_a, dtype=np.float64), np.asarray(num_b, dtype=np.float64)
    w = np.ones_like(a) if weights is None else np.asarray(weights, dtype=np.float64)
    keep = ~np.isnan(a) & ~np.isnan(b) & (w > 0)
    a, b, w = a[keep], b[keep], w[keep]
    if a.size == 0 or (w * b).sum() == 0:
        return NAN_INTERVAL
    point = float((w * a).sum() / (w * b).sum())
    if a.size < 2:
        return Interval(point, point, point)

    def ratio(x, y, v, axis=-1):
        return (x * v).sum(axis=axis) / np.maximum((y * v).sum(axis=axis), 1e-300)

    low, high = _bootstrap((a, b, w), ratio, draws, level, seed)
    return Interval(point, low, high)


def bootstrap_statistic(statistic: Callable[..., float], *samples, draws: int = 1000, level: float = 0.95,
                        seed: int = 0) -> Interval:  # fmt: skip
    """Any statistic of paired per-unit samples (PR-AUC of labels and scores, say), with its bootstrap interval.

    The units are resampled together across ``samples``; ``statistic`` takes one
    array per sample and returns a number. Resamples where it is NaN (no fraud drawn,
    say) are left out of the percentiles; with fewer than two units the interval is
    the point itself.
    """
    arrays = tuple(np.asarray(sample) for sample in samples)
    if not arrays or len(arrays[0]) == 0:
        return NAN_INTERVAL
    point = float(statistic(*arrays))
    if len(arrays[0]) < 2 or math.isnan(point):
        return Interval(point, point, point)
    rng = np.random.default_rng(seed)
    n = len(arrays[0])
    values = np.empty(draws)
    for k in range(draws):
        idx = rng.integers(0, n, size=n)
        values[k] = statistic(*(a[idx] for a in arrays))
    values = values[~np.isnan(values)]
    if values.size == 0:
        return Interval(point, point, point)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(point, float(low), float(high))


def label_cutoffs(cutoffs) -> dict:
    """``{cutoff: VALIDATION | TEST}`` for a run's evaluation cut-offs: the latest is test, the earlier ones validation."""
    ordered = sorted(set(cutoffs))
    return {c: TEST if c == ordered[-1] else VALIDATION for c in ordered}


def pick_champion(scores: Mapping[str, float], higher_is_better: bool = True) -> str | None:
    """The candidate with the best validation score; NaN never wins, ties go to the first listed."""
    best, best_score = None, None
    for name, score in scores.items():
        if score is None or math.isnan(score):
            continue
        if best_score is None or (score > best_score if higher_is_better else score < best_score):
            best, best_score = name, score
    return best


def best_other(scores: Mapping[str, float], champion: str, higher_is_better: bool = True) -> str | None:
    """The best candidate on ``scores`` other than ``champion`` (what the champion is compared with)."""
    return pick_champion({k: v for k, v in scores.items() if k != champion}, higher_is_better)


def margins_to_best(per_unit: Mapping[str, np.ndarray], scores: Mapping[str, float], higher_is_better: bool = True, *,
                    draws: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, Interval]:  # fmt: skip
    """Each candidate's paired difference with the best one on ``scores``, over the same units (the best's own is zero).

    ``per_unit`` holds every candidate's per-unit values in the same unit order;
    candidates missing from it or without a score are left out.
    """
    best = pick_champion(scores, higher_is_better)
    if best is None or best not in per_unit:
        return {}
    return {
        name: paired_difference(values, per_unit[best], draws=draws, level=level, seed=seed)
        for name, values in per_unit.items()
        if name in scores and scores[name] is not None and not math.isnan(scores[name])
    }


def pick_simplest_within_noise(margins: Mapping[str, Interval], simplest_first: Sequence[str],
                               higher_is_better: bool = True) -> str | None:  # fmt: skip
    """The first of ``simplest_first`` whose margin to the best (:func:`margins_to_best`) is not a loss.

    A candidate that validation cannot tell from the best is as good as measured, and
    the simpler one is served; None when no listed candidate has a margin.
    """
    for name in simplest_first:
        margin = margins.get(name)
        if margin is not None and not math.isnan(margin.value) and margin.verdict(higher_is_better) != "loss":
            return name
    return None
