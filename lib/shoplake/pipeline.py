"""The nightly pipeline, declared once: its steps, and the runners that walk them.

A :class:`Step` names what it runs (an importable ``main(argv)``), on which engine
(``spark`` for ``spark-submit``, ``ray`` for ``ray job submit``), which tables it reads
and writes, which date it runs for and which steps must finish first. The platform
declares ingest, features and the table profiles; every use case declares its own
steps (:class:`~shoplake.usecases.UseCase`). Three runners walk the same list:

* :func:`run_nightly`: in this process, on the embedded default (``shoplake nightly``);
* :func:`cluster_commands`: the ``spark-submit`` / ``ray job submit`` lines of a cluster
  run (``shoplake nightly --print-commands``, run one by one by
  ``conf/schedule/nightly.sh``);
* the Airflow DAG (``conf/schedule/airflow_dag.py``), one task per step with the
  steps' dependencies.

Run dates: a night processes the landing day D. Ingest runs for D; every later step
runs for the features date D + 1 (the morning after: everything ingested, nothing
later). :func:`step_date` is the one place that says so.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import shlex
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from shoplake.config import Config
    from shoplake.lake import Lake

log = logging.getLogger(__name__)

#: The date a step runs for: the landing day itself, the features date after it, or none.
RunsFor = Literal["landing", "features", "none"]


@dataclass(frozen=True)
class Step:
    """One step of the nightly pipeline.

    Attributes:
        name: The step, also its ``shoplake`` command (``train-fraud``).
        engine: ``spark`` (a ``spark-submit`` job) or ``ray`` (a ``ray job submit`` job).
        main: ``module:function`` of its entry point, ``main(argv) -> exit code``.
        shim: The file and leading arguments that ``spark-submit`` or ``ray job submit``
            runs (``("ray_apps/train.py", "fraud")``); the file calls :attr:`main`.
        help: One line for ``shoplake --help``.
        runs_for: The date it runs for (:func:`step_date`).
        after: Steps that must have finished first.
        inputs: Tables it reads.
        outputs: Tables it writes.
        nightly: Its body in :func:`run_nightly`: ``nightly(ctx)`` with a
            :class:`StepContext`; ``None`` to run :attr:`main` with the standard flags.
        skip_unless: A table that must hold a partition of the run date, else the step
            is skipped in :func:`run_nightly` (a shop without payments has no fraud step).
        use_case: The use case that declared it (``None`` for the platform's steps).
    """

    name: str
    engine: Literal["spark", "ray"]
    main: str
    shim: tuple[str, ...]
    help: str = ""
    runs_for: RunsFor = "features"
    after: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    nightly: Callable[[StepContext], None] | None = None
    skip_unless: str | None = None
    use_case: str | None = None

    def load_main(self) -> Callable[[list[str] | None], int]:
        """The entry point function."""
        module, _, name = self.main.partition(":")
        return getattr(importlib.import_module(module), name)


class PipelineError(ValueError):
    """The declared steps do not form a pipeline: a duplicate name, an unknown or a later dependency."""


def platform_steps() -> tuple[Step, ...]:
    """The steps every shop runs, whatever its use cases: ingest, features, table profiles."""
    return (
        Step(
            "ingest", "spark", "shoplake.ingest.commands:main", ("jobs/ingest.py",), "landing -> bronze (spark-submit jobs/ingest.py)",
            runs_for="landing", outputs=("bronze.*", "quarantine.*"), nightly=_ingest,
        ),
        Step(
            "features", "spark", "shoplake.features.commands:main", ("jobs/build_features.py",),
            "bronze -> silver/gold features (spark-submit jobs/build_features.py)", after=("ingest",), inputs=("bronze.*",),
            outputs=("silver.*", "gold.*"), nightly=_features,
        ),
        Step(
            "profile-tables", "ray", "shoplake.monitor.commands:main", ("ray_apps/profile_tables.py",),
            "rows and nulls per column into ops.table_profiles (ray_apps/profile_tables.py)", runs_for="none", after=("features",),
            inputs=("*",), outputs=("ops.table_profiles",), nightly=_profile,
        ),
    )  # fmt: skip


def maintenance_step(after: tuple[str, ...]) -> Step:
    """The step that closes every night, after all the others: compact and vacuum the lake's tables."""
    return Step(
        "maintain-lake", "spark", "shoplake.maintain:main", ("jobs/maintain_lake.py",),
        "compact small files and vacuum unreferenced ones in every table (spark-submit jobs/maintain_lake.py)", runs_for="none",
        after=after, inputs=("*",), outputs=("*",), nightly=_maintain,
    )  # fmt: skip


def steps(use_cases: Iterable | None = None) -> list[Step]:
    """Every step in run order: the platform's, then each use case's as it declares them, then lake maintenance.

    Raises:
        PipelineError: Two steps share a name, or a step depends on one that is unknown
            or comes later.
    """
    from shoplake.usecases import use_cases as declared

    out = list(platform_steps())
    for uc in declared() if use_cases is None else use_cases:
        out += [s if s.use_case else _owned(s, uc.name) for s in uc.steps]
    out.append(maintenance_step(after=tuple(s.name for s in out)))
    seen: set[str] = set()
    for step in out:
        if step.name in seen:
            raise PipelineError(f"two steps are named {step.name!r}")
        missing = [d for d in step.after if d not in seen]
        if missing:
            raise PipelineError(f"step {step.name!r} runs after {', '.join(missing)}, which no earlier step is")
        seen.add(step.name)
    return out


def _owned(step: Step, use_case: str) -> Step:
    from dataclasses import replace

    return replace(step, use_case=use_case)


def get_step(name: str) -> Step:
    """The declared step named ``name``.

    Raises:
        KeyError: No such step.
    """
    for step in steps():
        if step.name == name:
            return step
    raise KeyError(f"no step {name!r}; steps: {', '.join(s.name for s in steps())}")


def step_date(step: Step, landing_day: dt.date) -> dt.date | None:
    """The date ``step`` runs for in the night of ``landing_day``: that day for ingest, the next morning after it."""
    if step.runs_for == "landing":
        return landing_day
    if step.runs_for == "features":
        return landing_day + dt.timedelta(days=1)
    return None


def verb_main(verb: str) -> Callable[[list[str] | None], int]:
    """The generic entry point of one verb (``train``, ``score``): ``<use case> [flags]`` runs that use case's step.

    ``ray_apps/train.py fraud --run-date D`` runs the ``train`` step fraud declares.
    """

    def main(argv: list[str] | None = None) -> int:
        argv = list(sys.argv[1:] if argv is None else argv)
        mine = {s.use_case: s for s in steps() if s.use_case and s.shim[1:] and s.shim[0].endswith(f"/{verb}.py")}
        if not argv or argv[0] not in mine:
            raise SystemExit(f"usage: {verb}.py USE_CASE [flags]; use cases with a {verb} step: {', '.join(mine) or 'none'}")
        return mine[argv[0]].load_main()(argv[1:])

    return main


# ---------------------------------------------------------------- cluster commands


def command_line(step: Step, run_date: str | None, env: str = "cluster", spark_args: Iterable[str] = ()) -> str:
    """The shell line that runs ``step`` on clusters for ``run_date`` (a date or a template such as ``{{ ds }}``).

    Addresses come from the environment of the shell that runs it: ``SPARK_MASTER_URL``,
    ``RAY_DASHBOARD``, ``SHOPLAKE_WHEEL`` (the wheel as a ``.zip`` for ``--py-files``) and
    ``SHOPLAKE_RUNTIME_ENV`` (the Ray jobs' runtime environment as JSON). ``spark_args``
    go to ``spark-submit`` (the Delta jars: :func:`shoplake.spark.submit_args`).
    """
    args = [*step.shim, "--env", env]
    if run_date is not None:
        args += ["--run-date", run_date]
    quoted = " ".join(a if "{{" in a else shlex.quote(a) for a in args)
    if step.engine == "spark":
        jars = "".join(f"{shlex.quote(a)} " for a in spark_args)
        return f'spark-submit --master "$SPARK_MASTER_URL" {jars}--py-files "$SHOPLAKE_WHEEL" {quoted}'
    return f'ray job submit --address "$RAY_DASHBOARD" --working-dir . --runtime-env-json "$SHOPLAKE_RUNTIME_ENV" -- python {quoted}'


def cluster_commands(landing_day: dt.date, env: str = "cluster", skip: Iterable[str] = ()) -> list[str]:
    """The command lines of a cluster night for ``landing_day``, in run order, less the use cases in ``skip``.

    The Spark jobs get the jars of configuration ``env`` (:func:`shoplake.spark.submit_args`).
    """
    from shoplake.config import load_config
    from shoplake.spark import submit_args

    spark_args = submit_args(load_config(env))
    skip = set(skip)
    lines = []
    for step in steps():
        if step.use_case in skip:
            continue
        day = step_date(step, landing_day)
        lines.append(command_line(step, None if day is None else day.isoformat(), env, spark_args))
    return lines


# ---------------------------------------------------------------- in-process runner


class StepContext:
    """What a step's nightly body gets: the configuration, the lake, its run date, and a way to show progress."""

    def __init__(
        self, cfg: Config, lake: Lake, run_date: dt.date | None, days: list[dt.date], progress, console, sources: list[str] | None = None
    ):
        self.cfg, self.lake, self.run_date, self.days, self.sources = cfg, lake, run_date, days, sources
        self.progress, self.console = progress, console

    def bar(self, description: str, total: int) -> Callable[..., None]:
        """A progress bar; the returned ``update(text, done=False)`` advances it by one (or completes it) with a new text."""
        task = self.progress.add_task(description, total=total)

        def update(text: str, done: bool = False) -> None:
            if done:
                self.progress.update(task, completed=total, description=text)
            else:
                self.progress.update(task, advance=1, description=text)

        return update

    def warn(self, text: str) -> None:
        self.console.print(f"[yellow]{text}[/yellow]")

    def say(self, text: str) -> None:
        self.console.print(text)


def run_nightly(
    cfg: Config,
    days: list[dt.date],
    sources: list[str] | None = None,
    *,
    skip: Iterable[str] = (),
    only: Iterable[str] | None = None,
    progress=None,
    console=None,
) -> list[str]:
    """Run every declared step in this process for the landing days ``days``.

    Ingest loads the days' files; every later step runs for the morning after the last
    day (:func:`step_date`), so it uses everything ingested and nothing later. A step
    whose ``skip_unless`` table has no partition of its run date is skipped with a line.

    Args:
        cfg: Configuration.
        days: The landing days, in order.
        sources: Only these landing sources (default ``ingest.sources``).
        skip: Use cases whose steps are left out.
        only: Run only the steps of these names (default: all).
        progress: A rich ``Progress`` to show the steps in (default: a new one).
        console: A rich ``Console`` for the steps' lines (default: a new one).

    Returns:
        The names of the steps that ran.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from shoplake.lake import Lake

    console = console or Console()
    lake = Lake(cfg)
    skip = set(skip)
    only = None if only is None else set(only)
    ran = []
    own = progress is None
    progress = progress or Progress(
        SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )
    with progress if own else _nothing():
        for step in steps():
            if step.use_case in skip or (only is not None and step.name not in only):
                continue
            run_date = step_date(step, days[-1])
            if step.skip_unless and run_date not in lake.run_dates(step.skip_unless):
                console.print(f"{step.name} skipped: no {step.skip_unless} for {run_date}")
                continue
            ctx = StepContext(cfg, lake, run_date, days, progress, console, sources)
            log.info("nightly: %s for %s", step.name, run_date)
            if step.nightly is not None:
                step.nightly(ctx)
            else:
                code = step.load_main()(["--run-date", run_date.isoformat()] if run_date else [])
                if code:
                    raise RuntimeError(f"step {step.name} exited with {code}")
            ran.append(step.name)
    return ran


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _ingest(ctx: StepContext) -> None:
    from shoplake.ingest.run import ingest

    days, todo = ctx.days, list(ctx.sources or ctx.cfg.ingest.sources)
    update = ctx.bar(f"ingest {days[0]}..{days[-1]}", len(todo))
    ingest(ctx.cfg, ctx.lake, days, ctx.sources, on_source_done=lambda name: update(f"ingest: {name} written"))
    update(f"ingest {days[0]}..{days[-1]} committed", done=True)


def _features(ctx: StepContext) -> None:
    from shoplake.features.run import build_features

    update = ctx.bar(f"features for {ctx.run_date}", 1)
    build_features(ctx.cfg, ctx.lake, [ctx.run_date], with_holdout=True)
    update(f"features for {ctx.run_date} committed", done=True)


def _profile(ctx: StepContext) -> None:
    from shoplake.monitor.profile import profile_tables

    specs = [s for s in ctx.lake.tables() if s.layer == "bronze"]
    update = ctx.bar("profiling the bronze tables", len(specs))
    results = profile_tables(ctx.cfg, ctx.lake, specs, on_table=lambda result: update(f"profiled into {result.table}"))
    update(f"ops.table_profiles: {sum(r.rows for r in results):,} column profiles of {len(results)} tables", done=True)


def _maintain(ctx: StepContext) -> None:
    from shoplake.lake.maintenance import maintain

    specs = ctx.lake.tables()
    update = ctx.bar("lake maintenance", len(specs))
    done = []
    for spec in specs:
        done += maintain(ctx.lake, [spec])
        update(f"maintained {spec.full_name}")
    compacted = sum(1 for m in done if m.compacted)
    expired = sum(len(m.expired) for m in done)
    update(f"lake maintenance: {expired} snapshot(s) expired, {compacted} table(s) compacted, "
           f"{sum(m.vacuumed for m in done)} file(s) vacuumed", done=True)  # fmt: skip
