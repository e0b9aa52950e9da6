"""``POST /categorize``: a product's most probable category over HTTP."""

from fastapi import APIRouter, Body, Depends, HTTPException

from shoplake.categorize.serve import Categorizer, TitleIn
from shoplake.serve.http import Holder, OnlyParams
from shoplake.text.serve import TextTooLong

router = APIRouter()


# A plain function: FastAPI runs it on its thread pool, so a transformer's inference does not hold the event loop.
@router.post("/categorize", dependencies=[Depends(OnlyParams())])
def categorize(
    item: TitleIn = Body(..., description="A product's title and description."), categorizer: Categorizer = Depends(Holder("categorize"))
) -> dict:
    try:
        return categorizer.categorize(item)
    except TextTooLong as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    except RuntimeError as exc:
        raise HTTPException(status_code=503, detail=f"categorization is not available: {exc}") from None
