"""What every part of the synthetic shop shares: the parameters, constants and small array helpers."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoplake import columns as C
from shoplake.datagen.shop.vocab import CATEGORY_NAMES
from shoplake.ingest import landing as L

logger = logging.getLogger("shoplake.datagen.synthetic")

GROUND_TRUTH_FILE = "_ground_truth.json"


#: Landing format per source; together they exercise all three readers.
SOURCE_FORMATS: dict[str, str] = {
    L.ORDERS.name: "csv",
    L.EVENTS.name: "jsonl",
    L.PRODUCTS.name: "csv",
    L.PAYMENTS.name: "csv",
    L.CHARGEBACKS.name: "csv",
    L.AD_EVENTS.name: "jsonl",
    L.SUPPORT_TICKETS.name: "csv",
    L.INVENTORY.name: "parquet",
}


FRAUD_PATTERNS = ("stolen_card_burst", "account_takeover", "card_testing")


PRICE_LEVELS = ("low", "mid", "high")


PLACEMENTS = ("search_top", "home_banner", "product_page", "email")


CHANNELS = ("email", "chat", "phone")


REASON_FRAUD = "fraud"


REASON_NOT_RECEIVED = "not_received"


_VIEW, _CLICK, _CART, _PURCHASE, _SEARCH = range(5)


_EVENT_TYPE_NAMES = np.array(L.EVENT_TYPES, dtype=object)


_IMPRESSION, _AD_CLICK, _CONVERSION = range(3)


_AD_TYPE_NAMES = np.array(L.AD_EVENT_TYPES, dtype=object)


_PLACED, _CANCELLED, _RETURNED = L.ORDER_STATUSES


_SECONDS_PER_DAY = 86_400


_EPOCH = dt.date(1970, 1, 1)


# Shop countries (customers live here) and the wider world fraudsters ship to.
_COUNTRIES = ("DE", "FR", "NL", "BE", "AT", "ES", "IT", "PL", "SE", "DK")


_COUNTRY_P = np.array([0.3, 0.16, 0.1, 0.07, 0.06, 0.08, 0.08, 0.07, 0.05, 0.03])


_WORLD = _COUNTRIES + ("GB", "US", "CA", "BR", "MX", "TR", "UA", "NG", "ZA", "IN", "ID", "VN", "PH", "AE", "RU")


# Sessions start in hours 0..22 so a whole session fits inside its day's file.
_HOUR_WEIGHTS = np.array([2, 1, 1, 1, 1, 1, 2, 3, 4, 5, 6, 6, 7, 6, 6, 6, 6, 7, 8, 9, 9, 8, 5], dtype=float)


# Probability of browsing each price tier (cheap, middle, dear third of a category) by price level.
_TIER_P = np.array([[0.6, 0.3, 0.1], [0.25, 0.5, 0.25], [0.1, 0.3, 0.6]])


# Funnel probabilities per step; promotions lift add-to-cart.
_P_CLICK = 0.35


_P_CART = 0.3


_P_BUY = 0.55


_PROMO_CART_LIFT = 1.5


_MEAN_EXTRA_VIEWS = 2.5


_MAX_VIEWS = 10


_P_SEARCH = 0.35


_P_DRIFT = 0.15


# Share of views that come from the deals page, which lists only promoted items.
_P_DEAL = 0.06


_P_MULTI_UNIT = 0.12


_BASE_CTR = {"search_top": 0.06, "home_banner": 0.015, "product_page": 0.04, "email": 0.025}


_PLACEMENT_P = np.array([0.3, 0.25, 0.3, 0.15])


# Ad slots per placement; an impression's position is drawn evenly among them.
_AD_SLOTS = {"search_top": 4, "home_banner": 2, "product_page": 3, "email": 3}


# Click-through and conversion probabilities are capped below 1.
_MAX_AD_P = 0.95


# Median list price per category; item prices scatter log-normally around it.
_MEDIAN_PRICE = {
    "kitchen": 25.0,
    "garden": 30.0,
    "electronics": 110.0,
    "toys": 20.0,
    "books": 14.0,
    "beauty": 18.0,
    "sports": 38.0,
    "fashion": 35.0,
    "home": 42.0,
    "pets": 16.0,
    "office": 12.0,
    "automotive": 28.0,
}


# Per-category seasons on top of the shop-wide yearly component: (amplitude, peak day of year).
_CATEGORY_SEASON = {"garden": (0.35, 160), "toys": (0.4, 350), "sports": (0.15, 140), "fashion": (0.1, 100)}


_CHEAP_PRICES = np.array([0.49, 0.79, 0.99, 1.29, 1.49, 1.79, 1.99])


CHEAP_PRICE_LIMIT = 2.0


INTENTS = (
    "track_order",
    "cancel_order",
    "return_item",
    "refund_status",
    "change_address",
    "payment_issue",
    "product_question",
    "complaint",
)


_INTENT_P = np.array([0.22, 0.1, 0.14, 0.12, 0.08, 0.08, 0.16, 0.1])


# Intents a customer raises about a specific order; the others may or may not name one.
_ORDER_INTENTS = frozenset(INTENTS) - {"product_question"}


# Ways to break a row per source for the quarantine path: (field, reason, how).
_BAD_MODES: dict[str, tuple[tuple[str, str, str], ...]] = {
    L.ORDERS.name: (
        (C.UNIT_PRICE, "negative", "negate"),
        (C.QUANTITY, "not_positive", "zero"),
        (C.STATUS, "unknown_value", "unknown"),
        (C.ORDER_ID, "missing_required", "null"),
    ),
    L.EVENTS.name: (
        (C.EVENT_TYPE, "unknown_value", "unknown"),
        (C.ITEM_ID, "missing_item", "null_item"),
        (C.USER_ID, "missing_required", "null"),
    ),
    L.PRODUCTS.name: ((C.PRICE, "negative", "negate"), (C.TITLE, "blank", "blank"), (C.ITEM_ID, "missing_required", "null")),
    L.PAYMENTS.name: (
        (C.AMOUNT, "not_positive", "negate"),
        (C.PAYMENT_METHOD, "unknown_value", "unknown"),
        (C.CARD_ID, "missing_required", "null"),
    ),
    L.CHARGEBACKS.name: ((C.AMOUNT, "negative", "negate"), (C.PAYMENT_ID, "missing_required", "null")),
    L.AD_EVENTS.name: (
        (C.EVENT_TYPE, "unknown_value", "unknown"),
        (C.COST, "negative", "negate"),
        (C.CAMPAIGN_ID, "missing_required", "null"),
    ),
    L.SUPPORT_TICKETS.name: ((C.TEXT, "blank", "blank"), (C.TICKET_ID, "missing_required", "null")),
    L.INVENTORY.name: ((C.ON_HAND, "negative", "negate"), (C.UNIT_COST, "negative", "negate"), (C.ITEM_ID, "missing_required", "null")),
}


_ID_FIELDS = {
    L.ORDERS.name: C.ORDER_ID,
    L.EVENTS.name: C.EVENT_ID,
    L.PAYMENTS.name: C.PAYMENT_ID,
    L.CHARGEBACKS.name: C.CHARGEBACK_ID,
    L.AD_EVENTS.name: C.AD_EVENT_ID,
    L.SUPPORT_TICKETS.name: C.TICKET_ID,
}


# One seed stream per subsystem, so turning one knob does not reshuffle unrelated data.
_S_CATALOG, _S_USERS, _S_PLAN, _S_SESSIONS, _S_FRAUD, _S_PAYMENTS, _S_ADS, _S_SUPPORT, _S_BAD = range(1, 10)


@dataclass(frozen=True)
class ShopParams:
    """Knobs of the synthetic shop.

    Attributes:
        days: Number of days simulated, from ``start``.
        users: Registered customers (fraud accounts come on top).
        items: Catalogue size, including items launched during the period.
        seed: Seed of every random stream.
        start: First day.
        categories: Number of product categories (2 to 12).
        sessions_per_user_day: Mean browsing sessions per user per day, before seasonality.
        new_item_rate: Share of items launched after the first day (cold items).
        cheap_item_rate: Share of items priced under 2.00 (card testers buy these).
        weekly: Demand multipliers Monday..Sunday.
        yearly_amplitude: Amplitude of the shop-wide yearly cosine.
        yearly_peak_doy: Day of year where the yearly component peaks.
        promo_rate: Chance per item and day that a promotion starts.
        promo_boost: How much more often a promoted item is shown.
        price_change_rate: Chance per item and day of a permanent list-price change.
        stockout_rate: Share of items given a planted supply disruption.
        cancel_rate: Share of order lines cancelled 1-3 days later.
        return_rate: Share of order lines returned 5-20 days later.
        fraud_rate: Approximate share of payments that are fraudulent.
        fraud_chargeback_rate: Share of fraudulent payments that get a chargeback.
        friendly_fraud_rate: Share of legitimate payments charged back as not received.
        chargeback_delay_days: Inclusive range of days between payment and chargeback.
        ad_impressions_per_session: Sponsored impressions per browsing session.
        affinity_ctr_multiplier: CTR multiplier when the ad's category is a favourite of the viewer.
        ad_conversion_rate: Share of ad clicks that convert for an item at its category's median price shown
            outside the viewer's favourite categories.
        ad_position_decay: Click-through falls as ``position ** -ad_position_decay``.
        ad_text_sigma: Spread (log scale) of the click-through multiplier the ad's product noun carries.
        cvr_affinity_multiplier: Conversion odds multiplier when the ad's category is a favourite of the viewer.
        cvr_price_elasticity: Conversion odds scale as ``(price / category median price) ** -cvr_price_elasticity``.
        tickets_per_order: Support tickets per order placed that day.
        intent_label_rate: Share of tickets an agent labelled with an intent.
        new_device_rate: Chance a legitimate payment comes from a new device of the user.
        currency: ISO currency of amounts.
        bad_rows: Share of extra rows per file that break the contract (0 = none).
    """

    days: int = 90
    users: int = 400
    items: int = 250
    seed: int = 7
    start: dt.date = dt.date(2024, 1, 1)
    categories: int = 10
    sessions_per_user_day: float = 0.1
    new_item_rate: float = 0.1
    cheap_item_rate: float = 0.03
    weekly: tuple[float, ...] = (0.92, 0.9, 0.93, 0.97, 1.05, 1.22, 1.18)
    yearly_amplitude: float = 0.15
    yearly_peak_doy: int = 340
    promo_rate: float = 0.004
    promo_boost: float = 3.0
    price_change_rate: float = 0.003
    stockout_rate: float = 0.04
    cancel_rate: float = 0.03
    return_rate: float = 0.04
    fraud_rate: float = 0.02
    fraud_chargeback_rate: float = 1.0
    friendly_fraud_rate: float = 0.003
    chargeback_delay_days: tuple[int, int] = (3, 30)
    ad_impressions_per_session: float = 6.0
    affinity_ctr_multiplier: float = 2.5
    ad_conversion_rate: float = 0.1
    ad_position_decay: float = 0.5
    ad_text_sigma: float = 0.5
    cvr_affinity_multiplier: float = 2.0
    cvr_price_elasticity: float = 0.8
    tickets_per_order: float = 0.08
    intent_label_rate: float = 0.85
    new_device_rate: float = 0.02
    currency: str = "EUR"
    bad_rows: float = 0.0

    def __post_init__(self) -> None:
        if self.days < 1 or self.users < 1:
            raise ValueError("ShopParams: days and users must be >= 1")
        if not 2 <= self.categories <= len(CATEGORY_NAMES):
            raise ValueError(f"ShopParams: categories must be between 2 and {len(CATEGORY_NAMES)}")
        if self.items < self.categories:
            raise ValueError("ShopParams: items must be at least the number of categories")
        if self.seed < 0:
            raise ValueError("ShopParams: seed must be >= 0")
        if len(self.weekly) != 7 or min(self.weekly) <= 0:
            raise ValueError("ShopParams: weekly needs 7 positive multipliers (Monday..Sunday)")
        lo, hi = self.chargeback_delay_days
        if not 1 <= lo <= hi:
            raise ValueError("ShopParams: chargeback_delay_days must be (low, high) with 1 <= low <= high")
        rates = (
            "new_item_rate",
            "cheap_item_rate",
            "promo_rate",
            "price_change_rate",
            "stockout_rate",
            "cancel_rate",
            "return_rate",
            "fraud_chargeback_rate",
            "friendly_fraud_rate",
            "ad_conversion_rate",
            "intent_label_rate",
            "new_device_rate",
            "bad_rows",
        )
        for name in rates:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"ShopParams: {name} must be in [0, 1]")
        if not 0.0 <= self.fraud_rate < 1.0:
            raise ValueError("ShopParams: fraud_rate must be in [0, 1)")
        for name in ("ad_position_decay", "ad_text_sigma", "cvr_price_elasticity"):
            if getattr(self, name) < 0:
                raise ValueError(f"ShopParams: {name} must be >= 0")
        if self.cvr_affinity_multiplier <= 0 or self.affinity_ctr_multiplier <= 0:
            raise ValueError("ShopParams: the affinity multipliers must be positive")
        if self.cancel_rate + self.return_rate > 1.0:
            raise ValueError("ShopParams: cancel_rate + return_rate must be <= 1")

    def to_json(self) -> dict:
        """The parameters as JSON-ready values."""
        out = dataclasses.asdict(self)
        out["start"] = self.start.isoformat()
        out["weekly"] = list(self.weekly)
        out["chargeback_delay_days"] = list(self.chargeback_delay_days)
        return out


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *keys])))


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """``prefix`` + zero-padded numbers, built in Arrow because there may be millions."""
    digits = pc.utf8_lpad(pc.cast(pa.array(np.asarray(numbers, dtype=np.int64)), pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _ts(seconds: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(seconds, dtype=np.int64) * 1_000_000, type=pa.timestamp("us", tz="UTC"))


def _strings(values) -> pa.Array:
    return pa.array(values, type=pa.string())


def _round2(x: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(x, dtype=float), 2)


def _shop_price(x: np.ndarray) -> np.ndarray:
    """Prices ending in .99, as shops write them."""
    return _round2(np.maximum(np.floor(x), 1.0) - 0.01)


def _pick_cdf(cum: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Row-wise inverse CDF: ``cum`` is (n, k) cumulative probabilities, ``u`` (n,) uniforms."""
    return np.minimum((cum < u[:, None] * cum[:, -1:]).sum(axis=1), cum.shape[1] - 1)


def _segment_starts(counts: np.ndarray) -> np.ndarray:
    return np.cumsum(counts) - counts


def _runs(days: list[int]) -> list[tuple[int, int]]:
    """Contiguous runs of sorted day numbers as (first, last)."""
    out: list[tuple[int, int]] = []
    for d in days:
        if out and d == out[-1][1] + 1:
            out[-1] = (out[-1][0], d)
        else:
            out.append((d, d))
    return out


@dataclass
class _Lines:
    """Order lines of one day (before ids are given), one entry per line."""

    order: np.ndarray  # index into the day's orders
    item: np.ndarray
    qty: np.ndarray
    price: np.ndarray
    ts: np.ndarray
