"""``GET /forecast`` and ``GET /replenishment``: the latest forecast tables over HTTP."""

from fastapi import APIRouter, Depends, Query

from shoplake.forecast.serve import ForecastStore
from shoplake.serve.http import Holder, OnlyParams

router = APIRouter()
_store = Holder("forecast")


@router.get("/forecast", dependencies=[Depends(OnlyParams("item_id", "horizon"))])
def forecast(
    item_id: str = Query(..., min_length=1, description="Product id."),
    horizon: int | None = Query(
        None,
        ge=1,
        description="Periods (days, weeks or months: the forecast's grain) to return from the run date's on (default: all stored).",
    ),
    store: ForecastStore = Depends(_store),
) -> dict:
    return store.forecast(item_id, horizon)


@router.get("/replenishment", dependencies=[Depends(OnlyParams("item_id"))])
def replenishment(item_id: str = Query(..., min_length=1, description="Product id."), store: ForecastStore = Depends(_store)) -> dict:
    return store.replenishment(item_id)
