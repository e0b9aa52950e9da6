"""The feature step: a runner over the feature nodes that use cases declare.

A :class:`FeatureNode` names the tables it writes, the landing sources whose bronze
tables it needs (all of ``required``, at least one of ``any_of``) or can do without
(``optional``), and a pure ``compute(ctx, D)`` that returns D's rows of each output.
For each run date D the runner hands every node what the lake knew before D
(:class:`FeatureContext`: bronze partitions of landing days before D, see
:mod:`shoplake.features.pit`), and writes D's partition of every output. An output a
node keeps as a history table (:attr:`FeatureNode.histories`) is stored once instead:
before the nodes run for D the runner brings it to D (:mod:`shoplake.features.history`),
the node reads D's snapshot from it, and only the event days that changed are
rewritten. A node whose inputs are missing is skipped with a log line. All tables of
all run dates are written in one lake batch: after an error the lake is as it was,
and re-running a date replaces its partitions (a new version with the same rows).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from shoplake import columns as C
from shoplake.config import Config
from shoplake.features.history import History, HistoryState
from shoplake.features.pit import landed_before
from shoplake.ingest.bronze import BRONZE, configured_bronze, read_bronze
from shoplake.lake import Lake, WriteResult
from shoplake.lake.spec import TableSpec

log = logging.getLogger(__name__)

#: The step's name in the pipeline and in the run manifest.
FEATURES_STEP = "features"


@dataclass(frozen=True)
class FeatureNode:
    """One use case's feature transform as the runner sees it.

    Attributes:
        name: Short name, for logs.
        outputs: The tables it writes, in the order of the step's results.
        compute: ``compute(ctx, D)`` returns ``{table full name: DataFrame}`` of D's rows
            of every output; pure Spark, no reads or writes.
        required: Landing sources whose bronze tables must all exist.
        any_of: Landing sources of which at least one must exist.
        optional: Landing sources it can do without, each with what is lost then.
        skipped_because: Why the outputs are missing when the node cannot run
            (``"it is built from orders"``).
        extra_dates: Given the configuration, the lake and the run dates, further run
            dates the node needs built (a holdout cut-off): the step builds them too
            when asked to.
        configured_outputs: Given the configuration, the outputs as it shapes them
            (the shop's own fields add columns); default :attr:`outputs`. Same tables,
            in the same order.
        histories: Outputs stored once rather than per run date
            (:mod:`shoplake.features.history`): the runner brings each to the run date
            before ``compute``, which reads its snapshot with :meth:`FeatureContext.history`
            and returns no frame for it.
    """

    name: str
    outputs: tuple[TableSpec, ...]
    compute: Callable[[FeatureContext, dt.date], Mapping[str, DataFrame]]
    required: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()
    optional: Mapping[str, str] = field(default_factory=dict)
    skipped_because: str = ""
    extra_dates: Callable[[Config, Lake, list[dt.date]], list[dt.date]] | None = None
    configured_outputs: Callable[[Config], tuple[TableSpec, ...]] | None = None
    histories: tuple[History, ...] = ()

    def output_specs(self, cfg: Config) -> tuple[TableSpec, ...]:
        """The outputs' specs under ``cfg`` (:attr:`configured_outputs`, else :attr:`outputs`)."""
        return self.outputs if self.configured_outputs is None else self.configured_outputs(cfg)

    def sources(self) -> tuple[str, ...]:
        return (*self.required, *self.any_of, *self.optional)

    def can_run(self, present: set[str]) -> bool:
        return all(s in present for s in self.required) and (not self.any_of or any(s in present for s in self.any_of))


class FeatureContext:
    """What a node may read for one run: the configuration and the bronze tables, as known before a day."""

    def __init__(self, cfg: Config, bronze: Mapping[str, DataFrame | None], histories: Mapping[str, HistoryState] | None = None):
        self.cfg = cfg
        self._bronze = dict(bronze)
        self._histories = dict(histories or {})
        self._cached: list[DataFrame] = []

    def history(self, spec: TableSpec) -> HistoryState:
        """A history table as this run has brought it so far (see :meth:`HistoryState.as_of`)."""
        return self._histories[spec.full_name]

    def has(self, source: str) -> bool:
        """Whether the lake has the bronze table of a landing source."""
        return self._bronze.get(source) is not None

    def landed_before(self, source: str, day: dt.date) -> DataFrame | None:
        """A source's bronze rows of landing days before ``day`` (``None`` without the table)."""
        # Bronze partitions are landing days; the nightly run for D has only seen files of
        # earlier days, so a late-arriving row does not change D's snapshot on a rebuild.
        df = self._bronze.get(source)
        return None if df is None else landed_before(df, day)

    def landed_between(self, source: str, first: dt.date, day: dt.date) -> DataFrame | None:
        """As :meth:`landed_before`, from landing day ``first`` on."""
        landed = self.landed_before(source, day)
        return None if landed is None else landed.where(F.col(C.RUN_DATE) >= F.lit(first))

    def persist(self, df: DataFrame) -> DataFrame:
        """Cache a frame several outputs read; the runner releases it after the write."""
        df = df.persist()
        self._cached.append(df)
        return df

    def release(self) -> None:
        for df in self._cached:
            df.unpersist()
        self._cached.clear()


class FeatureInputError(ValueError):
    """The bronze tables the features need are not in the lake."""


def _union(frames: list[DataFrame]) -> DataFrame:
    out = frames[0]
    for df in frames[1:]:
        out = out.unionByName(df)
    return out


def _write_history(batch, spec: TableSpec, state: HistoryState) -> None:
    change = state.output()
    if change is None:
        log.info("features: %s unchanged", spec.full_name)
        return
    rows, mode, partitions = change
    batch.write(rows, spec, mode=mode, partitions=partitions)
    changed = f"{len(partitions[C.EVENT_DATE])} event day(s)" if partitions else "every event day"
    log.info("features: %s staged, %s", spec.full_name, changed)


def feature_nodes() -> list[FeatureNode]:
    """Every declared use case's feature nodes, in nightly order."""
    from shoplake.usecases import use_cases

    return [node for uc in use_cases() for node in uc.feature_nodes]


def feature_outputs(nodes: list[FeatureNode] | None = None) -> tuple[TableSpec, ...]:
    """Every table the feature step can write, in the order of its results."""
    return tuple(spec for node in (feature_nodes() if nodes is None else nodes) for spec in node.outputs)


def build_features(
    cfg: Config, lake: Lake, run_dates: list[dt.date], *, with_holdout: bool = False, nodes: list[FeatureNode] | None = None
) -> list[WriteResult]:
    """Run the feature nodes for some run dates and write their tables in one batch.

    Args:
        cfg: Configuration (each node reads its own settings).
        lake: The lake to read bronze from and write the features to.
        run_dates: Days to build the features for; each day's partition of every
            output is replaced. A loop over days, so meant for nightly runs and short
            backfills rather than years at once.
        with_holdout: Also build the run dates the nodes' ``extra_dates`` ask for.
        nodes: The nodes to run (default every declared use case's).

    Returns:
        The write results of the tables written, in the order of
        :func:`feature_outputs`, less those of the nodes whose inputs are missing.

    Raises:
        FeatureInputError: No node can run: none has the bronze tables it needs.
        ValueError: No run dates were given.
    """
    nodes = feature_nodes() if nodes is None else nodes
    days = sorted(set(run_dates))
    if not days:
        raise ValueError("build_features: no run dates given")
    names = list(dict.fromkeys(s for node in nodes for s in node.sources()))
    present = {name for name in names if lake.version(BRONZE[name]) is not None}
    runnable = [node for node in nodes if node.can_run(present)]
    for node in nodes:
        if node not in runnable:
            outs = [s.full_name for s in node.outputs]
            log.info("features: %s %s skipped, %s", " and ".join(outs), "is" if len(outs) == 1 else "are", node.skipped_because)
    if not runnable:
        wanted = ", ".join(BRONZE[name].full_name for name in names)
        raise FeatureInputError(f"none of {wanted} in {lake.root}: nothing to build features from; ingest the shop's files first")
    bronze: dict[str, DataFrame | None] = {}
    for name in dict.fromkeys(s for node in runnable for s in node.sources()):
        # With the shop's own fields: landing.extra_fields grows the bronze spec.
        spec = configured_bronze(cfg, name)
        if name in present:
            log.info("reading %s v%d", spec.full_name, lake.version(spec))
            bronze[name] = read_bronze(lake, cfg, name)
        else:
            lost = "; ".join(node.optional.get(name, f"{node.name} reads the others") for node in runnable if name in node.sources())
            log.warning("%s does not exist in %s; %s", spec.full_name, lake.root, lost)
            bronze[name] = None
    if with_holdout:
        extra = sorted({d for node in runnable if node.extra_dates for d in node.extra_dates(cfg, lake, days)} - set(days))
        if extra:
            log.info("features: also building the holdout cutoff snapshot(s) %s", ", ".join(map(str, extra)))
        days = sorted(set(days) | set(extra))

    specs = tuple(spec for node in runnable for spec in node.output_specs(cfg))
    spark = next(df for df in bronze.values() if df is not None).sparkSession
    histories = {h.spec.full_name: HistoryState(h, lake, spark) for node in runnable for h in node.histories}
    # A date at or before a history's last change rebuilds the later change dates as well.
    replayed = sorted({d for state in histories.values() for d in state.rewind(days[0])} - set(days))
    outputs: dict[str, list[DataFrame]] = {spec.full_name: [] for spec in specs if spec.full_name not in histories}
    ctx = FeatureContext(cfg, bronze, histories)
    try:
        for day in sorted(set(days) | set(replayed)):
            for state in histories.values():
                state.advance(ctx, day)
            if day not in days:
                continue
            for node in runnable:
                frames = node.compute(ctx, day)
                for spec in node.outputs:
                    if spec.full_name in outputs:
                        outputs[spec.full_name].append(frames[spec.full_name])
        with lake.batch(step=FEATURES_STEP, tables=specs, run_date=days[-1]) as batch:
            for spec in specs:
                if spec.full_name in histories:
                    _write_history(batch, spec, histories[spec.full_name])
                    continue
                batch.write(_union(outputs[spec.full_name]), spec, mode="replace", run_dates=days)
                log.info("features: %s staged for %s..%s", spec.full_name, days[0], days[-1])
        results = list(batch.results)
    finally:
        ctx.release()
    for result in results:
        log.info("features: %s v%d, %d rows for %d run date(s)", result.table, result.version, result.rows, len(days))
    return results


__all__ = ["FeatureContext", "FeatureInputError", "FeatureNode", "build_features", "feature_nodes", "feature_outputs"]
