"""Real-time fraud scoring: the state and model behind ``POST /fraud/score``.

:class:`FraudScorer` holds the registered fraud model and an
:class:`~shoplake.fraud.online.OnlineFeatures` state built from the latest
partition of ``silver.transactions``. A scored payment's features come from that state
(the same definitions as the nightly Spark job), then the payment joins the state, so
the next payment of the same card or device counts it. A payment id seen before is
scored again without being counted twice. When ``silver.transactions`` gets a new
Delta version (the nightly run), the state is rebuilt from it; when the serving alias
moves to another version, that model is loaded. Both checks run at most every
``check_every_s`` seconds, and a failed reload keeps what was loaded.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

import numpy as np
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shoplake import columns as C

log = logging.getLogger(__name__)

_ID = {"min_length": 1, "max_length": 256}


def _load_bundle(folder):
    """A fraud bundle whose feature list matches the online features' (``ValueError`` if not)."""
    from shoplake.fraud.bundle import FraudBundle

    bundle = FraudBundle.load(folder)
    bundle.check_features()
    return bundle


class PaymentIn(BaseModel):
    """One payment to score, as ``POST /fraud/score`` takes it (unknown fields are refused)."""

    model_config = ConfigDict(extra="forbid")
    payment_id: str = Field(..., **_ID, description="Unique payment id.")
    order_id: str | None = Field(None, **_ID, description="The order paid.")
    user_id: str = Field(..., **_ID, description="Paying customer.")
    amount: float = Field(..., gt=0, allow_inf_nan=False, description="Amount charged.")
    currency: str | None = Field(None, max_length=8, description="ISO currency code.")
    payment_method: str | None = Field(None, max_length=64, description="card, wallet or bank_transfer.")
    card_id: str = Field(..., **_ID, description="Card or wallet fingerprint.")
    device_id: str | None = Field(None, **_ID, description="Device fingerprint.")
    ip_address: str | None = Field(None, **_ID, description="Client IP address.")
    billing_country: str | None = Field(None, max_length=64, description="Billing country.")
    shipping_country: str | None = Field(None, max_length=64, description="Shipping country.")
    payment_ts: AwareDatetime = Field(..., description="When the payment was made, with its UTC offset (ISO 8601).")
    n_lines: int = Field(0, ge=0, le=100_000, description="Lines of the paid order.")
    n_units: int = Field(0, ge=0, le=10_000_000, description="Units of the paid order.")


class FraudScorer:
    """The fraud model and the online feature state of one replica.

    Args:
        cfg: Configuration (registry, ``fraud.registered_model``).
        lake: The lake holding ``silver.transactions``.
        check_every_s: Seconds between checks for a new table version or model version.
    """

    def __init__(self, cfg, lake, check_every_s: float = 30.0):
        from shoplake.serve.holder import RegisteredModel

        self.cfg, self.lake, self.check_every_s = cfg, lake, check_every_s
        self.state = None
        self.table_version: int | None = None
        self.run_date = None
        self.seen: set[str] = set()
        self.state_problem: str | None = None
        self._state_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._checked = -math.inf
        # The scorer decides when to check (with the table), so the model checks on each refresh.
        self.model = RegisteredModel(cfg, cfg.fraud.registered_model, _load_bundle, "fraud", check_every_s=0)
        self.refresh()

    @property
    def problem(self) -> str | None:
        """Why the model or the state is not (or no longer) what should be served, if so."""
        return "; ".join(p for p in (self.model.problem, self.state_problem) if p) or None

    def refresh(self) -> None:
        """Load the serving model and the latest transactions when either changed (skipped while another thread reloads)."""
        if not self._reload_lock.acquire(blocking=False):
            return
        try:
            self._checked = time.monotonic()
            self.model.refresh()
            self.state_problem = self._refresh_state()
        finally:
            self._reload_lock.release()

    def _refresh_state(self) -> str | None:
        from shoplake.fraud.online import OnlineFeatures
        from shoplake.fraud.schemas import TRANSACTIONS

        name = TRANSACTIONS.full_name
        try:
            version = self.lake.version(TRANSACTIONS)
            if version is None:
                return f"table {name} does not exist in lake {self.lake.root}"
            if version == self.table_version:
                return None
            dates = self.lake.run_dates(TRANSACTIONS, version=version)
            if not dates:
                return f"table {name} (version {version}) has no rows"
            rows = self.lake.to_arrow(TRANSACTIONS, version=version, run_date=dates[-1])
            state = OnlineFeatures.from_transactions(rows)
            seen = set(rows[C.PAYMENT_ID].to_pylist())
            with self._state_lock:
                self.state, self.seen, self.table_version, self.run_date = state, seen, version, dates[-1]
            log.info("fraud state from %s version %d, run date %s: %d payments", name, version, dates[-1], rows.num_rows)
        except Exception as exc:  # keep the state in memory
            log.exception("could not load %s", name)
            return f"could not read table {name}: {exc}"
        return None

    def status(self) -> dict[str, Any]:
        """Which model and which transactions are loaded (or why not)."""
        bundle, info = self.model.bundle, self.model.info
        out: dict[str, Any] = {"loaded": bundle is not None and self.state is not None}
        if info is not None:
            out.update(name=info.name, version=info.version, kind=bundle.kind)
        if self.state is not None:
            out.update(transactions_version=self.table_version, run_date=self.run_date.isoformat(), payments=len(self.seen))
        if self.problem:
            out["detail"] = self.problem
        return out

    def score(self, payment: PaymentIn) -> dict[str, Any]:
        """Score one payment from the state, then add it to the state.

        Raises:
            RuntimeError: No model or no state is loaded (the message says why).
        """
        from shoplake.fraud.score import score_rows

        if time.monotonic() - self._checked >= self.check_every_s:
            self.refresh()
        bundle, info = self.model.bundle, self.model.info
        if bundle is None or self.state is None:
            raise RuntimeError(self.problem or "the fraud scorer is not loaded")
        row = payment.model_dump()
        with self._state_lock:
            features = self.state.vector(row)
            if payment.payment_id not in self.seen:
                self.state.add(row)
                self.seen.add(payment.payment_id)
        scores, decisions, reasons = score_rows(bundle, np.asarray([features], dtype=np.float64))
        return {
            "payment_id": payment.payment_id, "score": float(scores[0]), "decision": str(decisions[0]),
            "reasons": [{"feature": f, "contribution": float(v)} for f, v in reasons[0]],
            "model_name": bundle.kind, "model_version": info.version,
        }  # fmt: skip
