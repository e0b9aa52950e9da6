"""Hyperparameter search on the validation split: Ray Tune with an ASHA scheduler.

Every use case chooses its models' settings the same way (the evaluation protocol of
:mod:`shoplake.evaluation`): each trial fits on train with settings drawn from the
model's search space and is scored on validation after every iteration (an epoch, a
block of boosting rounds); ASHA stops the trials that trail at each rung; the best
validation score of any trial and iteration wins. Test never takes part.

A use case hands over a *trial*: a function of ``(settings, data)`` that yields the
validation score after each iteration. It needs no Ray Tune API; this module wraps
it into a Tune function trainable that reports each score, so a trial ASHA stops
simply never resumes. ``data`` goes once into Ray's object store
(``tune.with_parameters``), not into every trial's settings.

Trials run in one process each with ``tuning.cpus_per_trial`` CPUs (and as many
torch threads), ``tuning.max_concurrent_trials`` at a time; the model the search
settles on is then fitted once more the use case's usual way (Ray Train on the
configured workers). The budget is ``tuning.num_samples`` trials, drawn with
``tuning.seed`` so a search repeats; ``tuning.time_budget_s`` caps its wall time.
Progress is logged as trials report and finish.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from shoplake.config import Config, Distribution, SearchSpace

log = logging.getLogger(__name__)

#: A trial: the settings drawn for it and the data; yields the validation score after each iteration.
Trial = Callable[[dict, Any], Iterable[float]]
#: The key under which trials report their score to Ray Tune.
SCORE = "score"
ITERATION = "training_iteration"


@dataclass(frozen=True)
class TrialResult:
    """What one trial reached.

    Attributes:
        settings: The settings drawn for it.
        best_score: Its best validation score over its iterations (NaN if it reported none).
        best_iteration: The iteration (from 1) of that score.
        iterations: Iterations it ran before it finished or ASHA stopped it.
        error: Why it failed, when it did.
    """

    settings: dict
    best_score: float
    best_iteration: int
    iterations: int
    error: str | None = None


@dataclass(frozen=True)
class SearchResult:
    """The outcome of one search.

    Attributes:
        name: The search's name (its folder under ``<runs_dir>/ray_results``).
        metric: What the score is (for the logs and reports).
        mode: ``max`` or ``min``: which way the score is better.
        best: The winning trial.
        trials: Every trial, in the order they were drawn.
        max_iterations: Iterations a trial runs at most.
        seconds: Wall time of the search.
    """

    name: str
    metric: str
    mode: Literal["max", "min"]
    best: TrialResult
    trials: list[TrialResult] = field(default_factory=list)
    max_iterations: int = 1
    seconds: float = 0.0

    @property
    def stopped_early(self) -> int:
        """Trials that ended before ``max_iterations`` without an error (ASHA's doing)."""
        return sum(1 for t in self.trials if t.error is None and t.iterations < self.max_iterations)

    def summary(self) -> str:
        """One line: the search, its budget and the winner."""
        return (
            f"{self.name}: {len(self.trials)} trials ({self.stopped_early} stopped early) in {self.seconds:.0f} s; "
            f"best validation {self.metric} {self.best.best_score:.4f} at iteration {self.best.best_iteration} with {self.best.settings}"
        )


def to_tune_space(space: SearchSpace) -> dict:
    """Ray Tune's search space for a configured one: a list is a choice, a :class:`Distribution` a range.

    Raises:
        ValueError: A setting with no values to choose from.
    """
    from ray import tune

    out = {}
    for name, values in space.items():
        if isinstance(values, Distribution):
            if values.uniform is not None:
                out[name] = tune.uniform(*values.uniform)
            elif values.loguniform is not None:
                out[name] = tune.loguniform(*values.loguniform)
            else:
                low, high = values.randint
                out[name] = tune.randint(low, high + 1)  # Tune's upper end is exclusive
        else:
            if not values:
                raise ValueError(f"search space: setting {name!r} has no values to choose from")
            out[name] = tune.choice(list(values))
    return out


def with_settings(cfg: Config, section: str, settings: Mapping[str, Any]) -> Config:
    """``cfg`` with ``settings`` (searched values of fields of ``cfg.<section>``) in place, validated like the configuration.

    A use case names the fields of its own section as its search space
    (``fraud.gbt_search: {gbt_max_depth: [3, 5, 7]}``); a trial, and the final fit, run
    on the configuration this returns.

    Raises:
        ValueError: A setting is not a field of the section, or its value is not valid there.
    """
    current = getattr(cfg, section)
    unknown = [k for k in settings if k not in type(current).model_fields]
    if unknown:
        raise ValueError(f"{section}: {', '.join(unknown)} {'is not a setting' if len(unknown) == 1 else 'are not settings'} of {section}")
    updated = type(current).model_validate({**current.model_dump(), **dict(settings)})
    return cfg.model_copy(update={section: updated})


def _better(mode: str) -> Callable[[float, float], bool]:
    return (lambda a, b: a > b) if mode == "max" else (lambda a, b: a < b)


def _trainable(trial: Trial, threads: int):
    def run(settings: dict, data: Any = None) -> None:
        import torch
        from ray import tune

        # One trial per reserved CPU: a trial's model must not spread over every core.
        torch.set_num_threads(threads)
        for iteration, score in enumerate(trial(dict(settings), data), start=1):
            tune.report({SCORE: float(score), "iteration": iteration})

    return run


def _progress_callback(name: str, total: int):
    """A Tune callback that logs each trial's scores and its end."""
    from ray.tune import Callback

    class Progress(Callback):
        done = 0

        def on_trial_result(self, iteration, trials, trial, result, **info):
            log.info("%s: trial %s iteration %d: validation score %.4f", name, trial.trial_id, result.get("iteration", 0), result[SCORE])

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.done += 1
            log.info("%s: trial %s ended (%d of %d)", name, trial.trial_id, self.done, total)

        def on_trial_error(self, iteration, trials, trial, **info):
            self.done += 1
            log.warning("%s: trial %s failed (%d of %d)", name, trial.trial_id, self.done, total)

    return Progress()


def search(
    cfg: Config,
    name: str,
    trial: Trial,
    space: SearchSpace,
    *,
    metric: str,
    mode: Literal["max", "min"],
    max_iterations: int,
    data: Any = None,
    fixed: Mapping[str, Any] | None = None,
) -> SearchResult:
    """Search ``space`` for the settings with the best validation score of ``trial``.

    Args:
        cfg: Configuration: ``cfg.tuning`` (budget, concurrency, CPUs, ASHA, seed),
            ``cfg.runs_dir``, ``cfg.ray``.
        name: The search's name; its folder under ``<runs_dir>/ray_results``.
        trial: Fits on train with the drawn settings and yields the validation
            score after each iteration, at most ``max_iterations`` of them.
        space: The settings searched (from the use case's configuration).
        metric: What the score is, for logs and reports.
        mode: ``max`` when higher scores are better, else ``min``.
        max_iterations: The iterations of a trial that ASHA lets run to the end.
        data: What every trial needs (training and validation data), shared
            through the object store.
        fixed: Settings every trial gets as they are, besides the searched ones.

    Returns:
        Every trial's result and the best one.

    Raises:
        RuntimeError: Every trial failed (the first error is in the message).
    """
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from shoplake.ray_runtime import init_ray
    from shoplake.train.loop import storage_path

    tc = cfg.tuning
    init_ray(cfg)
    trainable = tune.with_resources(_trainable(trial, max(int(tc.cpus_per_trial), 1)), {"cpu": tc.cpus_per_trial})
    scheduler = ASHAScheduler(
        time_attr=ITERATION, max_t=max_iterations, grace_period=min(tc.grace_period, max_iterations), reduction_factor=tc.reduction_factor
    )
    tuner = tune.Tuner(
        tune.with_parameters(trainable, data=data),
        param_space={**to_tune_space(space), **dict(fixed or {})},
        tune_config=tune.TuneConfig(
            metric=SCORE,
            mode=mode,
            num_samples=tc.num_samples,
            scheduler=scheduler,
            search_alg=BasicVariantGenerator(random_state=tc.seed, max_concurrent=tc.max_concurrent_trials),
            time_budget_s=tc.time_budget_s,
            # Trials are short: starting a fresh worker process (and torch) for each would cost more than most trials.
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=name, storage_path=storage_path(cfg), verbose=0, callbacks=[_progress_callback(name, tc.num_samples)]
        ),
    )
    log.info("%s: searching %s over %d trials (validation %s, %s is better)", name, sorted(space), tc.num_samples, metric, mode)
    started = time.monotonic()
    grid = tuner.fit()
    seconds = time.monotonic() - started
    better = _better(mode)
    trials: list[TrialResult] = []
    for result in grid:
        searched = {k: v for k, v in (result.config or {}).items() if k in space}
        frame = result.metrics_dataframe
        if frame is None or SCORE not in frame or frame.empty:
            trials.append(TrialResult(searched, math.nan, 0, 0, str(result.error) if result.error else "reported no score"))
            continue
        scores = [float(s) for s in frame[SCORE]]
        best_at = 0
        for i, s in enumerate(scores):
            if better(s, scores[best_at]):
                best_at = i
        trials.append(TrialResult(searched, scores[best_at], best_at + 1, len(scores), str(result.error) if result.error else None))
    scored = [t for t in trials if not math.isnan(t.best_score)]
    if not scored:
        errors = [t.error for t in trials if t.error]
        raise RuntimeError(f"search {name}: every trial failed; the first: {errors[0] if errors else 'no trials ran'}")
    best = scored[0]
    for t in scored[1:]:
        if better(t.best_score, best.best_score):
            best = t
    out = SearchResult(name, metric, mode, best, trials, max_iterations, seconds)
    log.info("%s", out.summary())
    return out
