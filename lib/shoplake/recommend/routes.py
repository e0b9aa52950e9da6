"""``GET /recommend`` and ``GET /similar-items``: the serving recommender's answers over HTTP."""

from fastapi import APIRouter, Depends, Query

from shoplake.recommend.serve import MAX_K, RecommenderModel
from shoplake.serve.http import Holder, OnlyParams

router = APIRouter()
_model = Holder("recommend")


@router.get("/recommend", dependencies=[Depends(OnlyParams("user_id", "k"))])
def recommend(
    user_id: str = Query(..., min_length=1, description="Customer id."),
    k: int | None = Query(None, ge=1, le=MAX_K, description="Items to return (default: recommender.k)."),
    model: RecommenderModel = Depends(_model),
) -> dict:
    return model.recommend(user_id, k)


@router.get("/similar-items", dependencies=[Depends(OnlyParams("item_id", "k"))])
def similar_items(
    item_id: str = Query(..., min_length=1, description="Product id."),
    k: int | None = Query(None, ge=1, le=MAX_K, description="Items to return (default: recommender.k)."),
    model: RecommenderModel = Depends(_model),
) -> dict:
    return model.similar_items(item_id, k)
