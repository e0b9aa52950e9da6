"""Batch forecasts and the replenishment plan: ``serving.forecasts`` and ``serving.replenishment_plan``.

The registered forecaster is downloaded once on the driver. Its run date's
``gold.item_daily_sales`` partition is cut into blocks of whole items; Ray Data
tasks (:class:`BundleForecaster`) load the bundle, sum their block to the bundle's
grain and target, and forecast its ``horizon`` periods from the one holding the run
date on (rows named by the period's first day, with the grain). A second Ray Data
step (:class:`PlanBuilder`) turns each block of forecasts, with the latest
inventory position before the run date, into plan rows
(:func:`shoplake.forecast.replenishment.plan`; forecasts of weeks or months are
spread over their days first). Each table gets one Delta commit that replaces the
run date's partition. A forecaster of revenue writes no plan: a plan orders units.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoplake import columns as C
from shoplake.config import Config
from shoplake.forecast.schemas import FORECASTS, GRAIN, ITEM_DAILY_SALES, REPLENISHMENT_PLAN
from shoplake.ingest.bronze import BRONZE
from shoplake.ingest.landing import INVENTORY

log = logging.getLogger(__name__)

#: Items per Ray Data block.
BLOCK_ITEMS = 500
#: Inventory snapshots older than this before the run date are not an item's position.
INVENTORY_LOOKBACK_DAYS = 60
INVENTORY_COLUMNS = (C.ITEM_ID, C.SNAPSHOT_DATE, C.ON_HAND, C.ON_ORDER, C.LEAD_TIME_DAYS)


def inventory_position(lake, run_date: dt.date, lookback_days: int = INVENTORY_LOOKBACK_DAYS) -> pa.Table | None:
    """Each item's latest inventory snapshot known before ``run_date``, or None without ``bronze.inventory``.

    Only snapshots dated before the run date, from landing days before it, and at
    most ``lookback_days`` old count; of two rows for the same item and day, the
    one ingested last wins.
    """
    import pyarrow.dataset as ds

    spec = BRONZE[INVENTORY.name]
    if not lake.exists(spec):
        return None
    where = (
        (ds.field(C.RUN_DATE) < pa.scalar(run_date, pa.date32()))
        & (ds.field(C.SNAPSHOT_DATE) < pa.scalar(run_date, pa.date32()))
        & (ds.field(C.SNAPSHOT_DATE) >= pa.scalar(run_date - dt.timedelta(days=lookback_days), pa.date32()))
    )
    rows = lake.to_arrow(spec, columns=[*INVENTORY_COLUMNS, C.INGESTED_AT], where=where)
    if rows.num_rows == 0:
        return rows.select(list(INVENTORY_COLUMNS))
    order = pc.sort_indices(rows, [(C.ITEM_ID, "ascending"), (C.SNAPSHOT_DATE, "descending"), (C.INGESTED_AT, "descending")])
    rows = rows.take(order)
    items = rows[C.ITEM_ID].to_numpy(zero_copy_only=False)
    first = np.ones(len(items), dtype=bool)
    first[1:] = items[1:] != items[:-1]
    return rows.filter(pa.array(first)).select(list(INVENTORY_COLUMNS))


class BundleForecaster:
    """Ray Data callable: a block of whole items' daily sales in, ``serving.forecasts`` rows out.

    Args:
        folder: Local bundle folder downloaded on the driver (a task on another node downloads the version itself).
        cfg: Configuration (registry, for that download).
        model_version: Registered version the rows are tagged with.
        run_date: Run date of the rows: the first forecast day.
        scored_at: Timestamp of the whole run, UTC.
    """

    def __init__(self, folder: str, cfg: Config, model_version: str, run_date: dt.date, scored_at: dt.datetime):
        from shoplake.forecast.bundle import ForecasterBundle
        from shoplake.registry import bundle_folder_here

        folder = bundle_folder_here(cfg, folder, model_version, cfg.forecasting.registered_model)
        self.bundle = ForecasterBundle.load(folder)
        self.model_version, self.run_date, self.scored_at = model_version, run_date, scored_at

    def __call__(self, batch: pa.Table) -> pa.Table:
        from shoplake.forecast.models.panel import SalesPanel

        daily = SalesPanel.from_arrow(batch)
        if daily.end != self.run_date:
            raise ValueError(f"the sales of this block end on {daily.end - dt.timedelta(days=1)}, not the day before {self.run_date}")
        fc = self.bundle.forecast(self.bundle.prepare(daily))
        n, h = fc.mean.shape
        return pa.table(
            {
                C.ITEM_ID: pa.array(np.repeat(fc.item_ids, h), pa.string()),
                C.FORECAST_DATE: pa.array(np.tile(fc.dates, n), pa.date32()),
                C.HORIZON_DAY: pa.array(np.tile(np.arange(1, h + 1, dtype=np.int32), n), pa.int32()),
                GRAIN: pa.array([fc.grain] * (n * h), pa.string()),
                C.MEAN: fc.mean.ravel(),
                C.P10: fc.p10.ravel(),
                C.P50: fc.p50.ravel(),
                C.P90: fc.p90.ravel(),
                C.MODEL_NAME: pa.array([self.bundle.kind] * (n * h), pa.string()),
                C.MODEL_VERSION: pa.array([self.model_version] * (n * h), pa.string()),
                C.RUN_DATE: pa.array([self.run_date] * (n * h), pa.date32()),
                C.SCORED_AT: pa.array([self.scored_at] * (n * h), pa.timestamp("us", tz="UTC")),
            },
            schema=FORECASTS.arrow_schema(),
        )


class PlanBuilder:
    """Ray Data callable: a block of whole items' forecasts in, ``serving.replenishment_plan`` rows out.

    Args:
        inventory: Latest inventory position per item (:func:`inventory_position`), or None.
        cfg: ``forecasting.service_level``, ``review_period_days``, ``default_lead_time_days``.
        scored_at: Timestamp of the whole run, UTC.
    """

    def __init__(self, inventory: pa.Table | None, cfg: Config, scored_at: dt.datetime):
        self.inventory, self.fc, self.scored_at = inventory, cfg.forecasting, scored_at

    def __call__(self, batch: pa.Table) -> pa.Table:
        from shoplake.forecast.grain import DAY
        from shoplake.forecast.replenishment import daily_from_periods, forecast_grain, forecast_matrices, plan

        items, mean, p10, p90 = forecast_matrices(batch)
        grain, start = forecast_grain(batch)
        sigma = None
        if grain != DAY and len(items):
            mean, sigma = daily_from_periods(mean, p10, p90, start, grain, batch[C.RUN_DATE][0].as_py())
        inventory = None
        if self.inventory is not None:
            inventory = self.inventory.filter(pc.is_in(self.inventory[C.ITEM_ID], pa.array(items, pa.string())))
        rows = plan(
            items, mean, p10, p90, inventory, service_level=self.fc.service_level,
            review_period_days=self.fc.review_period_days, default_lead_time_days=self.fc.default_lead_time_days, sigma_day=sigma,
        )  # fmt: skip
        n = rows.num_rows
        rows = rows.append_column(C.MODEL_VERSION, pa.array([batch[C.MODEL_VERSION][0].as_py()] * n, pa.string()))
        rows = rows.append_column(C.RUN_DATE, pa.array([batch[C.RUN_DATE][0].as_py()] * n, pa.date32()))
        rows = rows.append_column(C.SCORED_AT, pa.array([self.scored_at] * n, pa.timestamp("us", tz="UTC")))
        return rows.select(REPLENISHMENT_PLAN.column_names).cast(REPLENISHMENT_PLAN.arrow_schema())


def _forecast_block(batch: pa.Table, **kwargs) -> pa.Table:
    return BundleForecaster(**kwargs)(batch)


def _plan_block(batch: pa.Table, **kwargs) -> pa.Table:
    return PlanBuilder(**kwargs)(batch)


@dataclass
class ForecastScoringResult:
    """What a forecast scoring run wrote."""

    forecasts_version: int
    forecast_rows: int
    #: None when no plan was written (a forecaster of revenue).
    plan_version: int | None
    plan_rows: int
    items: int
    items_to_order: int
    #: Items planned without a known stock position (flagged ``no_inventory``).
    items_without_inventory: int
    model_name: str
    model_version: str
    run_date: dt.date
    scored_at: dt.datetime
    seconds: float


def no_inventory_warning(items: int, of: int, run_date: dt.date) -> str:
    """The warning of a plan that assumed an empty stock for ``items`` of its ``of`` items."""
    return (
        f"{items:,} of {of:,} items have no inventory position before {run_date} (bronze.inventory): "
        f"they are planned as if nothing were on hand, so their orders may be too large "
        f"(flagged {C.NO_INVENTORY} in serving.replenishment_plan)"
    )


def _item_blocks(sales: pa.Table, block_items: int) -> list[pa.Table]:
    """``sales`` cut into tables of whole items, ``block_items`` items each."""
    sales = sales.sort_by([(C.ITEM_ID, "ascending"), (C.SALE_DATE, "ascending")])
    items = sales[C.ITEM_ID].to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.r_[True, items[1:] != items[:-1]])
    bounds = [*starts[::block_items], len(items)]
    return [sales.slice(a, b - a) for a, b in zip(bounds[:-1], bounds[1:])]


def score_forecasts(cfg: Config, lake, run_date: dt.date | str | None = None, *, version: str | int | None = None) -> ForecastScoringResult:
    """Write every item's forecasts and replenishment plan for ``run_date``.

    Args:
        cfg: ``forecasting`` (registered model, plan settings), ``ray.cpus_per_data_task``.
        lake: The lake: reads ``gold.item_daily_sales`` and ``bronze.inventory``, writes the serving tables.
        run_date: Default: the run date the registered version was trained for.
        version: Registered version; None: the serving alias.

    Raises:
        NoServingModel: No forecaster registered (or ``version`` unknown).
        shoplake.forecast.train.MissingSalesError: No sales partition for the run date.
    """
    from shoplake.forecast.bundle import ForecasterBundle
    from shoplake.forecast.train import MissingSalesError
    from shoplake.ray_runtime import init_ray
    from shoplake.registry import download_bundle

    start = time.perf_counter()
    ray = init_ray(cfg)
    folder, info = download_bundle(cfg, version, registered_model=cfg.forecasting.registered_model)
    bundle = ForecasterBundle.load(folder)
    if run_date is None:
        run_date = bundle.metadata.get("run_date")
        if not run_date:
            raise ValueError(f"forecaster version {info.version} records no run_date: give the run date to score for")
    run_date = run_date if isinstance(run_date, dt.date) else dt.date.fromisoformat(str(run_date))
    if run_date not in lake.run_dates(ITEM_DAILY_SALES):
        raise MissingSalesError(f"{ITEM_DAILY_SALES.full_name} has no run date {run_date} in {lake.root}")
    sales = lake.to_arrow(ITEM_DAILY_SALES, run_date=run_date)
    blocks = _item_blocks(sales, BLOCK_ITEMS)
    inventory = inventory_position(lake, run_date)
    scored_at = dt.datetime.now(dt.timezone.utc)
    n_items = pc.count_distinct(sales[C.ITEM_ID]).as_py()
    log.info(
        "forecasting %d items with %s version %s (%s, %s grain) for %s: %d blocks",
        n_items, info.name, info.version, bundle.kind, bundle.grain, run_date, len(blocks),
    )  # fmt: skip
    kind, target = bundle.kind, bundle.target
    del bundle, sales
    # Tasks rather than an actor pool: a forecaster bundle loads in milliseconds.
    forecasts = ray.data.from_arrow(blocks).map_batches(
        _forecast_block,
        fn_kwargs={"folder": str(folder), "cfg": cfg, "model_version": info.version, "run_date": run_date, "scored_at": scored_at},
        batch_format="pyarrow", batch_size=None, num_cpus=cfg.ray.cpus_per_data_task,
    ).materialize()  # fmt: skip
    written = lake.ray_write(forecasts, FORECASTS, mode="replace", run_dates=[run_date])
    if target != "units":
        seconds = time.perf_counter() - start
        log.warning("forecaster version %s forecasts %s, not units: no replenishment plan written for %s", info.version, target, run_date)
        log.info("wrote %s v%d (%d rows) in %.1f s", written.table, written.version, written.rows, seconds)
        return ForecastScoringResult(
            forecasts_version=written.version, forecast_rows=written.rows, plan_version=None, plan_rows=0,
            items=n_items, items_to_order=0,
            items_without_inventory=0, model_name=kind, model_version=info.version, run_date=run_date, scored_at=scored_at, seconds=seconds,
        )  # fmt: skip
    plan = forecasts.map_batches(
        _plan_block, fn_kwargs={"inventory": inventory, "cfg": cfg, "scored_at": scored_at},
        batch_format="pyarrow", batch_size=None, num_cpus=cfg.ray.cpus_per_data_task,
    ).materialize()  # fmt: skip
    to_order = no_stock = 0
    for b in plan.iter_batches(batch_format="pyarrow", batch_size=None):
        to_order += pc.sum(pc.greater(b[C.ORDER_QUANTITY], 0).cast(pa.int64())).as_py() or 0
        no_stock += pc.sum(b[C.NO_INVENTORY].cast(pa.int64())).as_py() or 0
    if no_stock:
        log.warning("%s", no_inventory_warning(no_stock, plan.count(), run_date))
    planned = lake.ray_write(plan, REPLENISHMENT_PLAN, mode="replace", run_dates=[run_date])
    seconds = time.perf_counter() - start
    log.info(
        "wrote %s v%d (%d rows) and %s v%d (%d items, %d to order) in %.1f s",
        written.table, written.version, written.rows, planned.table, planned.version, planned.rows, to_order, seconds,
    )  # fmt: skip
    return ForecastScoringResult(
        forecasts_version=written.version, forecast_rows=written.rows, plan_version=planned.version, plan_rows=planned.rows,
        items=planned.rows, items_to_order=to_order, items_without_inventory=no_stock, model_name=kind, model_version=info.version, run_date=run_date,
        scored_at=scored_at, seconds=seconds,
    )  # fmt: skip
