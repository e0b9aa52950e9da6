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
        self.cfg, self.lake, self.check_every_s = cfg, lake, check_every_s
        self.bundle = self.info = self.state = None
        self.table_version: int | None = None
        self.run_date = None
        self.seen: set[str] = set()
        self.problem: str | None = None
        self._state_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._checked = -math.inf
        self.refresh()

    def refresh(self) -> None:
        """Load the serving model and the latest transactions when either changed (skipped while another thread reloads)."""
        if not self._reload_lock.acquire(blocking=False):
            return
        try:
            self._checked = time.monotonic()
            problems = [p for p in (self._refresh_model(), self._refresh_state()) if p]
            self.problem = "; ".join(problems) or None
        finally:
            self._reload_lock.release()

    def _refresh_model(self) -> str | None:
        from shoplake.fraud.models import FraudBundle
        from shoplake.registry import NoServingModel, download_bundle, resolve_version

        try:
            info = resolve_version(self.cfg, None, self.cfg.fraud.registered_model)
            if self.info is None or info.version != self.info.version:
                folder, info = download_bundle(self.cfg, info.version, registered_model=self.cfg.fraud.registered_model)
                bundle = FraudBundle.load(folder)
                bundle.check_features()
                self.bundle, self.info = bundle, info
                log.info("fraud scoring with %s version %s (%s)", info.name, info.version, bundle.kind)
        except (NoServingModel, ValueError) as exc:
            return f"no fraud model: {exc}"
        except Exception as exc:  # a broken reload must not take the endpoint down; keep what was loaded
            log.exception("could not load the fraud model")
            return f"could not load the fraud model: {exc}"
        return None

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
        out: dict[str, Any] = {"loaded": self.bundle is not None and self.state is not None}
        if self.info is not None:
            out.update(name=self.info.name, version=self.info.version, kind=self.bundle.kind)
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
        bundle, info = self.bundle, self.info
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
