"""``POST /ads/rank``: a viewer's ads of a placement ranked by expected value over HTTP."""

from fastapi import APIRouter, Depends, HTTPException

from shoplake.ads.serve import AdRanker, RankIn
from shoplake.serve.http import Holder, OnlyParams

router = APIRouter()


@router.post("/ads/rank", dependencies=[Depends(OnlyParams())])
async def ads_rank(body: RankIn, ranker: AdRanker = Depends(Holder("ads"))) -> dict:
    # On the replica's event loop rather than a worker thread: a ranking takes a few milliseconds,
    # about what the hand-over to a thread and back would add.
    try:
        return ranker.rank(body)
    except RuntimeError as exc:
        raise HTTPException(status_code=503, detail=f"ad ranking is not available: {exc}") from None
