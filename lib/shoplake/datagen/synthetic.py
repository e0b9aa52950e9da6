"""A deterministic synthetic online shop that writes the landing contract.

:func:`generate_shop` simulates a shop day by day and writes every landing source of
:mod:`shoplake.ingest.landing` for every day under ``<out>/<source>/<YYYY-MM-DD>.<ext>``,
plus ``<out>/_ground_truth.json`` with the structure it planted, so that features,
models and ingest can be tested against a known answer:

* users with latent tastes over product categories and a price level; their sessions,
  views, clicks and purchases concentrate on their favourite categories;
* a catalogue whose titles and descriptions come from per-category vocabularies, with
  brands, prices by category, price changes, promotions and items launched later;
* weekly seasonality, a smooth yearly component and per-category seasons;
* stock that sells out: planted supply disruptions (stock written off, replenishment
  held back) plus whatever stock-outs the replenishment policy causes;
* a view -> click -> add_to_cart -> purchase funnel with searches; every placed order
  line has a purchase event; cancellations and returns arrive on later days;
* one payment per order; fraud (stolen-card bursts, account takeovers, card testing)
  is labelled only through chargebacks that arrive 3-30 days later, next to a few
  friendly-fraud chargebacks on legitimate payments;
* sponsored-product ads chosen by a logging policy whose propensity every impression
  carries; click-through depends on placement, position, whether the advertised
  category is one of the viewer's favourites and the ad's words, conversion after a
  click on price and that affinity (the ground truth holds each impression's true
  probabilities);
* support tickets whose text depends on their intent;
* an end-of-day inventory snapshot per catalogued item.

Everything is drawn from :class:`numpy.random.Generator` (PCG64) streams seeded from
``ShopParams.seed``, one stream per subsystem and day, so the same parameters give
byte-identical files. Timestamps are whole seconds, UTC.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from shoplake.datagen.landing_writer import conform, write_landing
from shoplake.datagen.shop.ads import AdsMixin
from shoplake.datagen.shop.catalogue import CatalogueMixin
from shoplake.datagen.shop.common import (
    _CATEGORY_SEASON,
    _COUNTRIES,
    _EPOCH,
    _INTENT_P,
    _S_PLAN,
    _SECONDS_PER_DAY,
    _TIER_P,
    FRAUD_PATTERNS,
    GROUND_TRUTH_FILE,
    INTENTS,
    PRICE_LEVELS,
    SOURCE_FORMATS,
    ShopParams,
    _rng,
    _runs,
    logger,
)
from shoplake.datagen.shop.corruption import CorruptionMixin
from shoplake.datagen.shop.customers import CustomersMixin
from shoplake.datagen.shop.fraud import FraudMixin
from shoplake.datagen.shop.funnel import FunnelMixin
from shoplake.datagen.shop.inventory import InventoryMixin
from shoplake.datagen.shop.support import SupportMixin
from shoplake.datagen.shop.vocab import _VOCAB, CATEGORY_NAMES
from shoplake.ingest import landing as L


class _Shop(CatalogueMixin, CustomersMixin, InventoryMixin, FunnelMixin, FraudMixin, AdsMixin, SupportMixin, CorruptionMixin):
    """The simulation state; :func:`generate_shop` drives it one day at a time."""

    def __init__(self, params: ShopParams) -> None:
        self.p = params
        self.cats = list(CATEGORY_NAMES[: params.categories])
        self.n_cat = len(self.cats)
        self.day0_s = (params.start - _EPOCH).days * _SECONDS_PER_DAY
        self._build_catalog()
        self._build_users()
        self._build_calendar()
        self._plan()
        self._build_ads()
        self._init_inventory()
        self._init_counters()

    def _build_calendar(self) -> None:
        p = self.p
        dates = [p.start + dt.timedelta(days=d) for d in range(p.days)]
        self.dates = dates
        doy = np.array([d.timetuple().tm_yday for d in dates], dtype=float)
        dow = np.array([d.weekday() for d in dates])
        self.weekly_mult = np.asarray(p.weekly, dtype=float)[dow]
        self.yearly_mult = 1.0 + p.yearly_amplitude * np.cos(2 * np.pi * (doy - p.yearly_peak_doy) / 365.25)
        self.day_mult = self.weekly_mult * self.yearly_mult
        season = np.ones((p.days, self.n_cat))
        for c, name in enumerate(self.cats):
            if name in _CATEGORY_SEASON:
                amp, peak = _CATEGORY_SEASON[name]
                season[:, c] = 1.0 + amp * np.cos(2 * np.pi * (doy - peak) / 365.25)
        self.cat_season = season

    def _plan(self) -> None:
        """Promotions, price changes, supply disruptions and ad campaigns, fixed up front."""
        p, rng, n = self.p, _rng(self.p.seed, _S_PLAN), self.p.items
        # Supply disruptions first: promotions must not overlap them.
        self.disruptions: list[dict] = []
        n_dis = int(round(p.stockout_rate * n)) if p.days >= 8 else 0
        if p.stockout_rate > 0 and p.days >= 8:
            n_dis = max(n_dis, 1)
        candidates = np.flatnonzero((self.launch <= p.days // 2) & ~self.cheap)
        for i in np.sort(rng.choice(candidates, size=min(n_dis, len(candidates)), replace=False)):
            lo = max(int(self.launch[i]) + 2, p.days // 10)
            s = int(rng.integers(lo, max(lo + 1, p.days - 3)))
            e = min(s + int(rng.integers(3, 9)) - 1, p.days - 1)
            self.disruptions.append({"item": int(i), "start": s, "end": e})
        blocked: dict[int, list[tuple[int, int]]] = {}
        for dis in self.disruptions:
            blocked.setdefault(dis["item"], []).append((dis["start"] - 1, dis["end"] + 1))

        self.promotions: list[dict] = []
        taken: dict[int, list[tuple[int, int]]] = {k: list(v) for k, v in blocked.items()}
        for _ in range(int(rng.poisson(p.promo_rate * n * p.days))):
            i = int(rng.integers(n))
            if self.launch[i] >= p.days - 1:
                continue
            s = int(rng.integers(self.launch[i] + 1 if self.launch[i] > 0 else 0, p.days))
            e = min(s + int(rng.integers(3, 11)) - 1, p.days - 1)
            disc = float(rng.choice([0.1, 0.15, 0.2, 0.25, 0.3, 0.4]))
            # A gap of a day between windows keeps every start and end visible in the products file.
            if any(s <= b + 1 and a <= e + 1 for a, b in taken.get(i, [])):
                continue
            taken.setdefault(i, []).append((s, e))
            self.promotions.append({"item": i, "start": s, "end": e, "discount": disc})
        self.promotions.sort(key=lambda r: (r["start"], r["item"]))
        self.promo_disc = np.zeros((p.days, n))
        for pr in self.promotions:
            self.promo_disc[pr["start"] : pr["end"] + 1, pr["item"]] = pr["discount"]

        self.price_changes: dict[int, list[tuple[int, float]]] = {}
        self.price_change_log: list[dict] = []
        seen: set[tuple[int, int]] = set()
        for _ in range(int(rng.poisson(p.price_change_rate * n * p.days))):
            i = int(rng.integers(n))
            d = int(rng.integers(self.launch[i] + 1, p.days + 1))
            if d >= p.days or self.cheap[i] or (i, d) in seen:
                continue
            seen.add((i, d))
            self.price_changes.setdefault(d, []).append((i, float(np.clip(rng.lognormal(0.0, 0.1), 0.75, 1.3))))

        nc = self.n_cat
        self.campaigns: list[dict] = []
        pairs_item, pairs_camp = [], []
        for k in range(max(nc, n // 20)):
            c = k % nc
            pool = np.flatnonzero((self.cat == c) & (self.launch == 0))
            chosen = np.sort(rng.choice(pool, size=min(len(pool), int(rng.integers(2, 7))), replace=False))
            cpc = round(float(rng.uniform(0.15, 1.2)), 2)
            self.campaigns.append({"campaign_id": f"c{k + 1:04d}", "category": self.cats[c], "items": chosen.tolist(), "cpc": cpc})
            pairs_item.extend(chosen.tolist())
            pairs_camp.extend([k] * len(chosen))
        self.ad_item = np.array(pairs_item, dtype=np.int64)
        self.ad_camp = np.array(pairs_camp, dtype=np.int64)
        self.ad_by_cat = [np.flatnonzero(self.cat[self.ad_item] == c) for c in range(nc)]
        self.camp_ids = np.array([c["campaign_id"] for c in self.campaigns], dtype=object)
        self.camp_cpc = np.array([c["cpc"] for c in self.campaigns])

        # Each pattern strikes at least once, on a fixed day, so that even a small shop shows all three.
        fraud_days = [(p.days // 4) * (k + 1) for k in range(len(FRAUD_PATTERNS))]
        self.forced_fraud_day = {pat: min(d, p.days - 1) for pat, d in zip(FRAUD_PATTERNS, fraud_days)}

    def _init_counters(self) -> None:
        self.seq = {k: 0 for k in ("event", "session", "order", "payment", "chargeback", "ad", "impression", "ticket")}
        self.pending_orders: dict[int, list[pa.Table]] = {}
        self.pending_chargebacks: dict[int, list[dict]] = {}
        self.chargeback_log: list[dict] = []
        self.fraud_ids: dict[str, list[str]] = {pat: [] for pat in FRAUD_PATTERNS}
        self.fraud_incidents: list[dict] = []
        self.fraud_accounts: list[str] = []
        self.friendly_ids: list[str] = []
        self.recent_orders: deque = deque(maxlen=14)
        self.bad_log: list[dict] = []
        self.rows = {s: 0 for s in SOURCE_FORMATS}
        self.counts = {"cancelled_lines": 0, "returned_lines": 0}

    def _next(self, kind: str, k: int) -> np.ndarray:
        start = self.seq[kind]
        self.seq[kind] = start + k
        return np.arange(start + 1, start + k + 1, dtype=np.int64)

    # ----------------------------------------------------------------- one day

    def simulate_day(self, d: int) -> dict[str, pa.Table]:
        """Advance the shop by day ``d`` and return that day's landing tables."""
        p = self.p
        day_s = self.day0_s + d * _SECONDS_PER_DAY
        products = self._products_today(d, day_s)
        opening = self._open_stock(d)
        sess = self._sessions(d, day_s, opening)
        remaining = opening.copy()
        np.subtract.at(remaining, sess["lines"].item, sess["lines"].qty)
        fraud = self._fraud(d, day_s, remaining, n_legit=len(sess["order_user"]))
        orders, payments, events_extra, order_refs = self._orders_and_payments(d, day_s, sess, fraud)
        events = self._events_table(sess, events_extra)
        ads = self._ads(d, day_s, len(sess["session_user"]))
        tickets = self._tickets(d, day_s, order_refs)
        chargebacks = self._chargebacks_today(d)
        inventory = self._close_stock(d, opening, sess, fraud)
        tables = {
            L.ORDERS.name: orders,
            L.EVENTS.name: events,
            L.PRODUCTS.name: products,
            L.PAYMENTS.name: payments,
            L.CHARGEBACKS.name: chargebacks,
            L.AD_EVENTS.name: ads,
            L.SUPPORT_TICKETS.name: tickets,
            L.INVENTORY.name: inventory,
        }
        tables[L.ORDERS.name] = self._with_order_changes(d, orders)
        tables = {name: conform(name, t) for name, t in tables.items()}
        if p.bad_rows > 0:
            tables = self._inject_bad_rows(d, tables)
        return tables

    # ------------------------------------------------------------ ground truth

    def ground_truth(self, summary: dict) -> dict:
        """Everything the generator planted, for tests and benchmarks."""
        p = self.p
        nu = p.users
        users = {}
        for u in range(nu):
            favs = [self.cats[c] for c in self.fav_order[u, : self.n_fav[u]]]
            users[self.user_ids[u]] = {
                "favourite_categories": favs,
                "taste": [round(float(x), 5) for x in self.taste[u]],
                "price_level": PRICE_LEVELS[self.level[u]],
                "country": _COUNTRIES[self.country[u]],
                "activity": round(float(self.activity[u]), 5),
            }
        items = {}
        for i in range(p.items):
            items[self.item_ids[i]] = {
                "category": self.cats[self.cat[i]],
                "brand": self.brand[i],
                "title": self.title[i],
                "base_price": float(self.base_price[i]),
                "price_tier": int(self.tier[i]),
                "launch_date": self.dates[min(int(self.launch[i]), p.days - 1)].isoformat(),
                "popularity": round(float(self.pop[i]), 5),
                "lead_time_days": int(self.lead[i]),
                "unit_cost": float(self.unit_cost[i]),
                "cheap": bool(self.cheap[i]),
            }
        iso = lambda d: self.dates[d].isoformat()  # noqa: E731
        planted = {(x["item"], x["start"]) for x in self.disruptions}
        stockouts = []
        for i in sorted(self.stockout_days):
            for s, e in _runs(self.stockout_days[i]):
                stockouts.append(
                    {
                        "item_id": self.item_ids[i],
                        "start": iso(s),
                        "end": iso(e),
                        "days": [iso(x) for x in range(s, e + 1)],
                        "planted": (i, s) in planted,
                    }
                )
        cbs = [{k: v for k, v in cb.items() if k != "ts"} | {"chargeback_ts": _iso_ts(cb["ts"])} for cb in self.chargeback_log]
        return {
            "params": p.to_json(),
            "summary": summary,
            "categories": self.cats,
            "category_vocabulary": {c: {k: list(v) for k, v in _VOCAB[c].items()} for c in self.cats},
            "price_levels": list(PRICE_LEVELS),
            "price_tier_preference": _TIER_P.tolist(),
            "users": users,
            "items": items,
            "seasonality": {
                "weekly_multipliers": list(p.weekly),
                "weekday_names": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
                "yearly": {"amplitude": p.yearly_amplitude, "peak_day_of_year": p.yearly_peak_doy},
                "category": {c: {"amplitude": a, "peak_day_of_year": k} for c, (a, k) in _CATEGORY_SEASON.items() if c in self.cats},
                "daily_multiplier": {iso(d): round(float(self.day_mult[d]), 6) for d in range(p.days)},
            },
            "promotions": [
                {"item_id": self.item_ids[x["item"]], "start": iso(x["start"]), "end": iso(x["end"]), "discount": x["discount"]}
                for x in self.promotions
            ],
            "price_changes": self.price_change_log,
            "supply_disruptions": [
                {"item_id": self.item_ids[x["item"]], "start": iso(x["start"]), "end": iso(x["end"])} for x in self.disruptions
            ],
            "stockouts": stockouts,
            "fraud": {
                **{pat: list(ids) for pat, ids in self.fraud_ids.items()},
                "incidents": [x for x in self.fraud_incidents if x["payment_ids"]],
                "fraud_accounts": self.fraud_accounts,
                "friendly_fraud": list(self.friendly_ids),
                "chargeback_delay_days": list(p.chargeback_delay_days),
                "chargebacks": cbs,
            },
            "ads": self.ad_truth(),
            "support": {
                "intents": list(INTENTS),
                "intent_probabilities": dict(zip(INTENTS, _INTENT_P.tolist())),
                "label_rate": p.intent_label_rate,
            },
            "orders": dict(self.counts),
            "bad_rows": {
                "rate": p.bad_rows,
                "counts": {s: sum(1 for b in self.bad_log if b["source"] == s) for s in SOURCE_FORMATS},
                "rows": self.bad_log,
            },
        }


def _iso_ts(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def generate_shop(
    out: str | Path,
    params: ShopParams,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Simulate the shop and write its landing files and ground truth.

    Writes ``<out>/<source>/<YYYY-MM-DD>.<ext>`` for every landing source and every day
    (an empty file, or a header only, on days without rows) in the format of
    :data:`SOURCE_FORMATS`, and ``<out>/_ground_truth.json``. The same parameters give
    byte-identical files.

    Args:
        out: Landing root to write into (created if missing).
        params: The shop's knobs.
        progress: Called as ``progress(done_days, total_days)`` after each day.

    Returns:
        A summary: ``out``, ``days``, ``files`` (landing files written), ``rows`` per
        source, and the ``ground_truth`` path.
    """
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    logger.info(
        "generating synthetic shop into %s: %d days, %d users, %d items, seed %d",
        root,
        params.days,
        params.users,
        params.items,
        params.seed,
    )
    shop = _Shop(params)
    files = 0
    for d in range(params.days):
        tables = shop.simulate_day(d)
        for source, table in tables.items():
            write_landing(table, root, source, shop.dates[d], SOURCE_FORMATS[source])
            shop.rows[source] += table.num_rows
            files += 1
        logger.debug("day %s: %s", shop.dates[d], {s: t.num_rows for s, t in tables.items()})
        if progress is not None:
            progress(d + 1, params.days)
    summary = {
        "out": str(root),
        "days": params.days,
        "files": files,
        "rows": dict(shop.rows),
        "ground_truth": str(root / GROUND_TRUTH_FILE),
    }
    # Paths stay out of the ground truth so that it is byte-identical wherever it is written.
    truth = shop.ground_truth({k: v for k, v in summary.items() if k not in ("out", "ground_truth")})
    tmp = root / f".{GROUND_TRUTH_FILE}.tmp"
    tmp.write_text(json.dumps(truth), encoding="utf-8")
    tmp.replace(root / GROUND_TRUTH_FILE)
    logger.info("synthetic shop written: %d files, rows %s", files, summary["rows"])
    return summary
