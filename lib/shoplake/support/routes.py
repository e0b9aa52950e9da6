"""``POST /support/reply``: a customer's message answered, or handed to a person, over HTTP."""

from fastapi import APIRouter, Body, Depends, HTTPException

from shoplake.serve.http import Holder, OnlyParams
from shoplake.support.serve import MessageIn, SupportReplier
from shoplake.text.serve import TextTooLong

router = APIRouter()


# A plain function: FastAPI runs it on its thread pool, so a transformer's inference does not hold the event loop.
@router.post("/support/reply", dependencies=[Depends(OnlyParams())])
def support_reply(
    message: MessageIn = Body(..., description="A customer's message."), replier: SupportReplier = Depends(Holder("support"))
) -> dict:
    try:
        return replier.reply(message)
    except TextTooLong as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    except RuntimeError as exc:
        raise HTTPException(status_code=503, detail=f"support replies are not available: {exc}") from None
