"""What ``GET /forecast`` and ``GET /replenishment`` answer from: the latest forecast tables, indexed by item."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException

from shoplake.serve.tables import LatestPartition, jsonable


class ForecastStore:
    """The latest forecasts and replenishment plan, answering response bodies.

    Args:
        lake: The lake holding ``serving.forecasts`` and ``serving.replenishment_plan``.
        check_every_s: Seconds between checks of the tables' Delta versions.
    """

    def __init__(self, lake, check_every_s: float = 30.0):
        from shoplake import columns as C
        from shoplake.forecast.schemas import FORECASTS, REPLENISHMENT_PLAN

        self.forecasts = LatestPartition(lake, FORECASTS, order_by=(C.HORIZON_DAY,), check_every_s=check_every_s)
        self.plan = LatestPartition(lake, REPLENISHMENT_PLAN, check_every_s=check_every_s)

    def forecast(self, item_id: str, horizon: int | None = None) -> dict[str, Any]:
        """The item's forecast for its first ``horizon`` periods (all stored by default).

        ``grain`` says what a row's period is (day, week or month); each row's ``date``
        is its period's first day, the first period holding the run date.

        Raises:
            HTTPException: 503 without forecasts, 404 for an item without one, 422 for a
                horizon beyond the days stored.
        """
        from shoplake import columns as C

        part = self.forecasts.require("forecasts")
        if item_id not in part.index:
            raise HTTPException(
                status_code=404, detail=f"unknown item_id {item_id!r}: no forecast for it on run date {part.run_date.isoformat()}"
            )
        days = part.days(item_id)
        if horizon is not None and horizon > days:
            raise HTTPException(
                status_code=422,
                detail=f"query parameter horizon: must be at most {days}, the periods forecast for item {item_id!r} (got {horizon})",
            )
        from shoplake.forecast.grain import DAY
        from shoplake.forecast.schemas import GRAIN

        rows = part.item_rows(item_id, horizon)
        return {
            "item_id": item_id, "run_date": part.run_date.isoformat(),
            "model_name": rows[0][C.MODEL_NAME], "model_version": rows[0][C.MODEL_VERSION],
            "grain": rows[0].get(GRAIN) or DAY, "horizon": len(rows),
            "forecasts": [
                {"date": jsonable(r[C.FORECAST_DATE]), **{c: jsonable(r[c]) for c in (C.MEAN, C.P10, C.P50, C.P90)}} for r in rows
            ],
        }  # fmt: skip

    def replenishment(self, item_id: str) -> dict[str, Any]:
        """The item's row of the latest replenishment plan (503 without a plan, 404 for an item not in it)."""
        part = self.plan.require("replenishment plans")
        rows = part.item_rows(item_id)
        if rows is None:
            raise HTTPException(
                status_code=404,
                detail=f"unknown item_id {item_id!r}: not in the replenishment plan of run date {part.run_date.isoformat()}",
            )
        return {name: jsonable(value) for name, value in rows[0].items()}

    def status(self) -> dict[str, Any]:
        """What is loaded of each table (or why nothing is), under ``forecasts`` and ``replenishment``."""
        return {"forecasts": self.forecasts.status(), "replenishment": self.plan.status()}
