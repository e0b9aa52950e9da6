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

The state computes the features the model's bundle lists (:func:`online_features`): the
built-in ones, those of the shop's own payment fields (``landing.extra_fields.payments``)
and, for a model trained with ``fraud.feature_table`` in ``join`` mode, the table's. The
request body takes those fields beside :class:`PaymentIn`'s (:func:`payment_model`),
typed and checked as declared; a bundle reading a feature the configuration does not
give is not loaded, and the problem says which.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, create_model

from shoplake import columns as C
from shoplake.fraud.declarations import Feature, configured_features, resolve_features
from shoplake.ingest.landing import PAYMENTS, configured_source
from shoplake.serve.holder import ModelWithState, RegisteredModel

log = logging.getLogger(__name__)

_ID = {"min_length": 1, "max_length": 256}
#: Longest text a shop's own string field may hold in a request.
MAX_TEXT = 256
#: Python types of the shop's own fields in a request body, by declared type.
_REQUEST_TYPES: dict[str, type] = {
    "string": str, "int": int, "long": int, "float": float, "double": float, "boolean": bool, "date": dt.date,
    "timestamp": AwareDatetime,
}  # fmt: skip


def online_features(bundle, cfg) -> tuple[Feature, ...]:
    """The declarations of the features ``bundle`` reads, under ``cfg``, in the bundle's order.

    A built-in feature or one of the shop's own payment fields is declared by the
    configuration; a feature of the shop's feature table (a model trained in ``join``
    mode) is the payment's own value, which the request brings.

    Raises:
        FeatureMismatchError: The bundle reads a feature the configuration does not
            declare (the message names it).
    """
    from shoplake.fraud.models.base import FeatureMismatchError

    table = (bundle.metadata.get("feature_table") or {}).get("features") or []
    known = {f.name for f in configured_features(cfg)}
    own = [n for n in bundle.feature_names if n not in known and n in table]
    try:
        resolved = {f.name: f for f in resolve_features([n for n in bundle.feature_names if n not in own], cfg)}
    except KeyError as exc:
        raise FeatureMismatchError(
            f"the fraud bundle ({bundle.kind}, run date {bundle.metadata.get('run_date')}) cannot be served under this "
            f"configuration: {exc.args[0]}; declare them again or retrain"
        ) from None
    resolved.update({n: Feature(n, "payment", f"The shop's feature table's {n}.", of=n) for n in own})
    return tuple(resolved[n] for n in bundle.feature_names)


def payment_model(cfg, features: Sequence[Feature] = ()) -> type[PaymentIn]:
    """The request body of ``POST /fraud/score`` under ``cfg``: :class:`PaymentIn` and the shop's own fields.

    Every field ``landing.extra_fields.payments`` declares is accepted (required when
    declared so), typed and held to its ``min``, ``max`` and ``values``; so is every
    ``payment`` feature of ``features`` that no field gives (a feature table's, as a
    number; a feature the configuration declares is computed, never posted). Without
    either it is :class:`PaymentIn` itself.
    """
    declared = {f.name: f for f in cfg.landing.extra_fields.get(PAYMENTS.name, ())}
    fields: dict[str, Any] = {}
    for field in configured_source(cfg, PAYMENTS.name).extra_fields:
        spec = declared[field.name]
        kind: Any = _REQUEST_TYPES[field.dtype]
        limits: dict[str, Any] = {"description": field.doc}
        if spec.values:
            kind = Literal[tuple(spec.values)]
        elif kind is str:
            limits["max_length"] = MAX_TEXT
        if kind is float:
            limits["allow_inf_nan"] = False
        if spec.min is not None:
            limits["ge"] = spec.min
        if spec.max is not None:
            limits["le"] = spec.max
        fields[field.name] = (kind if field.required else kind | None, Field(... if field.required else None, **limits))
    known = {f.name for f in configured_features(cfg)}
    for f in features:
        if f.name not in known and f.kind == "payment" and f.of not in fields and f.of not in PaymentIn.model_fields:
            fields[f.of] = (float | None, Field(None, allow_inf_nan=False, description=f.description))
    if not fields:
        return PaymentIn
    return create_model("PaymentIn", __base__=PaymentIn, **fields)


def _load_bundle(folder, cfg):
    """A fraud bundle whose features this configuration can compute (``FeatureMismatchError`` if not)."""
    from shoplake.fraud.bundle import FraudBundle

    bundle = FraudBundle.load(folder)
    online_features(bundle, cfg)
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


class FraudScorer(ModelWithState):
    """The fraud model and the online feature state of one replica.

    Args:
        cfg: Configuration (registry, ``fraud.registered_model``).
        lake: The lake holding ``silver.transactions``.
        check_every_s: Seconds between checks for a new table version or model version.
    """

    def __init__(self, cfg, lake, check_every_s: float = 30.0):

        super().__init__(check_every_s)
        self.cfg, self.lake = cfg, lake
        self.state = None
        self.features: tuple[Feature, ...] = ()
        self.payment_model: type[PaymentIn] = payment_model(cfg)
        self.table_version: int | None = None
        self.run_date = None
        self.seen: set[str] = set()
        self._state_lock = threading.Lock()
        # The scorer decides when to check (with the table), so the model checks on each refresh.
        self.model = RegisteredModel(cfg, cfg.fraud.registered_model, functools.partial(_load_bundle, cfg=cfg), "fraud", check_every_s=0)
        self.refresh()

    def _refresh_state(self) -> str | None:
        from shoplake.fraud.online import OnlineFeatures
        from shoplake.fraud.schemas import TRANSACTIONS

        name = TRANSACTIONS.full_name
        try:
            # The model's features decide what the state computes and what a request may carry.
            bundle = self.model.bundle
            features = online_features(bundle, self.cfg) if bundle is not None else configured_features(self.cfg)
            version = self.lake.version(TRANSACTIONS)
            if version is None:
                return f"table {name} does not exist in lake {self.lake.root}"
            if version == self.table_version and features == self.features:
                return None
            dates = self.lake.run_dates(TRANSACTIONS, version=version)
            if not dates:
                return f"table {name} (version {version}) has no rows"
            rows = self.lake.to_arrow(TRANSACTIONS, version=version, run_date=dates[-1])
            state = OnlineFeatures.from_transactions(rows, features)
            seen = set(rows[C.PAYMENT_ID].to_pylist())
            model = payment_model(self.cfg, features)
            with self._state_lock:
                self.state, self.seen, self.table_version, self.run_date = state, seen, version, dates[-1]
                self.features, self.payment_model = features, model
            log.info("fraud state from %s version %d, run date %s: %d payments, %d features", name, version, dates[-1],
                     rows.num_rows, len(features))  # fmt: skip
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
            out.update(transactions_version=self.table_version, run_date=self.run_date.isoformat(), payments=len(self.seen),
                       features=len(self.features))  # fmt: skip
        if self.problem:
            out["detail"] = self.problem
        return out

    def parse(self, body: Mapping[str, Any]) -> PaymentIn:
        """``body`` as a payment of the current request model (:func:`payment_model`).

        Raises:
            pydantic.ValidationError: A field is missing, malformed, out of its declared
                bounds or unknown (each error names it).
        """
        return self.payment_model.model_validate(body)

    def score(self, payment: PaymentIn) -> dict[str, Any]:
        """Score one payment from the state, then add it to the state.

        Raises:
            RuntimeError: No model or no state is loaded (the message says why), or the
                loaded state computes other features than the model reads (a reload
                is under way).
        """
        from shoplake.fraud.score import score_rows

        self.refresh_if_due()
        bundle, info = self.model.bundle, self.model.info
        if bundle is None or self.state is None:
            raise RuntimeError(self.problem or "the fraud scorer is not loaded")
        row = payment.model_dump()
        with self._state_lock:
            if self.state.names != bundle.feature_names:
                raise RuntimeError("the fraud features are being reloaded for a new model; try again")
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
