"""``POST /fraud/score``: one payment's fraud score, decision and reasons over HTTP."""

from fastapi import APIRouter, Body, Depends, HTTPException

from shoplake.fraud.serve import FraudScorer, PaymentIn
from shoplake.serve.http import Holder, OnlyParams

router = APIRouter()


@router.post("/fraud/score", dependencies=[Depends(OnlyParams())])
async def fraud_score(payment: PaymentIn = Body(..., description="One payment."), scorer: FraudScorer = Depends(Holder("fraud"))) -> dict:
    # On the replica's event loop rather than a worker thread: scoring takes about a millisecond,
    # less than the hand-over to a thread and back.
    try:
        return scorer.score(payment)
    except RuntimeError as exc:
        raise HTTPException(status_code=503, detail=f"fraud scoring is not available: {exc}") from None
