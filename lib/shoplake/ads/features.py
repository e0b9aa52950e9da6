"""``gold.ad_features`` and ``gold.ad_items``: point-in-time impression features and the advertised items.

Pure Spark transforms (no I/O). For run date D an impression at time ``t`` (microseconds,
UTC) sees only what happened strictly before ``t``: the impression itself, impressions
at the same microsecond and everything later are excluded. Only ad events, clickstream
events and product rows landed before D and timestamped before D's midnight count,
and ad and clickstream events only from ``D - history_days`` on.

* **Historic rates with Bayesian smoothing.** Per item, campaign, placement and
  placement x item: impressions before ``t``, clicks before ``t`` (the first click of
  each earlier impression, at its own time) and conversions before ``t``. The
  click-through is ``(clicks + s * ctr_prior) / (impressions + s)`` with ``s =
  ctr_prior_strength``; the conversion rate ``(conversions + k * cvr_prior) / (clicks + k)``
  with ``k = cvr_prior_strength``. A viewer's own click-through the same way (an
  unknown viewer gets the prior and 0 impressions).
* **The viewer's history.** Clickstream events (views, clicks, carts, purchases) of
  the viewer before ``t``, and the share of them in the ad item's category, smoothed
  as ``(in category + 1) / (all + 10)``. Clickstream events are placed in the
  category the catalogue listed last before D.
* **The item.** Clickstream events of the item before ``t`` (anyone's), its category
  and price as listed by the latest product row at or before ``t``, the price band of
  ``features.price_bands``.
* **The slot.** Placement, position (1 when the log has none), hour of day (UTC).
* **Propensity.** The logged one; a log without it gets the ad's share of its
  placement's impressions in the snapshot (a policy that ignores the viewer).
* **Labels.** ``click``: the impression has a click before D's midnight. ``conversion``:
  null until the impression is ``maturity_days`` old (``impression_ts <= midnight -
  maturity_days``), then 1 when it has a conversion before D's midnight, else 0.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from shoplake import columns as C
from shoplake.ads import schemas as S
from shoplake.features.catalogue import item_text, price_band
from shoplake.features.pit import MICROS_PER_DAY, landed_before, latest_copies, run_midnight
from shoplake.ingest.landing import EVENT_TYPES
from shoplake.lake.spec import TableSpec, spark_type

_TS = "_ts_us"
_IMP, _CLK, _CNV, _EV, _KIND = "_imp", "_clk", "_cnv", "_ev", "_kind"
_FIRST_CLICK, _FIRST_CONVERSION = "_first_click", "_first_conversion"
_MICROS_PER_HOUR = 3_600 * 1_000_000
#: Clickstream event types that count as interest in an item.
INTEREST_TYPES = tuple(t for t in EVENT_TYPES if t != "search")
#: Denominator smoothing of the category affinity: (in category + 1) / (all + AFFINITY_PSEUDO_EVENTS).
AFFINITY_PSEUDO_EVENTS = 10.0


@dataclass(frozen=True)
class Smoothing:
    """Beta priors of the historic rates (``ads.ctr_prior`` ... of the configuration)."""

    ctr_prior: float = 0.03
    ctr_strength: float = 100.0
    cvr_prior: float = 0.1
    cvr_strength: float = 20.0

    @classmethod
    def of(cls, ads_cfg) -> Smoothing:
        return cls(ads_cfg.ctr_prior, ads_cfg.ctr_prior_strength, ads_cfg.cvr_prior, ads_cfg.cvr_prior_strength)

    def ctr(self, clicks: Column, impressions: Column) -> Column:
        return (clicks + F.lit(self.ctr_strength * self.ctr_prior)) / (impressions + F.lit(self.ctr_strength))

    def cvr(self, conversions: Column, clicks: Column) -> Column:
        return (conversions + F.lit(self.cvr_strength * self.cvr_prior)) / (clicks + F.lit(self.cvr_strength))


def _earlier(*keys: str) -> Window:
    """Rows of the same ``keys`` strictly before this one's microsecond."""
    return Window.partitionBy(*keys).orderBy(_TS).rangeBetween(Window.unboundedPreceding, -1)


def conform(df: DataFrame, spec: TableSpec, columns: dict[str, Column]) -> DataFrame:
    """Exactly ``spec``'s columns in its order and types, each from ``columns`` or the frame's column of that name."""
    return df.select(*(columns.get(c.name, F.col(c.name)).cast(spark_type(c.dtype)).alias(c.name) for c in spec.columns))


def ad_snapshot(ad_events: DataFrame, run_date: dt.date, history_days: int) -> tuple[DataFrame, DataFrame, DataFrame]:
    """The impressions of the snapshot and the first click and conversion of each impression.

    Returns:
        ``(impressions, clicks, conversions)``: impressions (one per id, the earliest
        copy's fields) shown from ``midnight - history_days`` to D's midnight; per
        impression id the first click's time and the clicks' cost, and the first
        conversion's time, both before D's midnight.
    """
    end = run_midnight(run_date)
    start = end - dt.timedelta(days=history_days)
    events = latest_copies(landed_before(ad_events, run_date), [C.AD_EVENT_ID]).where(
        (F.col(C.EVENT_TS) < F.lit(end)) & (F.col(C.EVENT_TS) >= F.lit(start))
    )
    kind = F.col(C.EVENT_TYPE)
    first = Window.partitionBy(C.IMPRESSION_ID).orderBy(C.EVENT_TS, C.AD_EVENT_ID)
    impressions = events.where(kind == "impression").withColumn("_n", F.row_number().over(first)).where(F.col("_n") == 1).drop("_n")
    clicks = (
        events.where(kind == "click")
        .groupBy(C.IMPRESSION_ID)
        .agg(F.min(C.EVENT_TS).alias(_FIRST_CLICK), F.sum(F.coalesce(F.col(C.COST), F.lit(0.0))).alias(C.COST))
    )
    conversions = events.where(kind == "conversion").groupBy(C.IMPRESSION_ID).agg(F.min(C.EVENT_TS).alias(_FIRST_CONVERSION))
    return impressions, clicks, conversions


def _as_is(df: DataFrame) -> DataFrame:
    return df


@dataclass(frozen=True)
class AdInputs:
    """What every ad table of run date D reads, built once by :func:`ad_inputs` for all of them.

    Attributes:
        run_date: The run date D.
        history_days: Days of ad and clickstream events before D's midnight.
        impressions: The snapshot's impressions (:func:`ad_snapshot`).
        clicks: Per impression id, the first click's time and the clicks' cost.
        conversions: Per impression id, the first conversion's time.
        catalogue: Product rows known before D (:func:`catalogue_before`), or None.
        latest: Per item the latest listing (:func:`latest_listing`), or None.
        interest: Clickstream interest of the window (:func:`interest_events`), or None.
        keep: Caches a frame several tables read (the feature step's ``FeatureContext.persist``; by default nothing is cached).
    """

    run_date: dt.date
    history_days: int
    impressions: DataFrame
    clicks: DataFrame
    conversions: DataFrame
    catalogue: DataFrame | None
    latest: DataFrame | None
    interest: DataFrame | None
    keep: Callable[[DataFrame], DataFrame] = _as_is


def ad_inputs(
    ad_events: DataFrame,
    products: DataFrame | None,
    events: DataFrame | None,
    run_date: dt.date,
    history_days: int,
    keep: Callable[[DataFrame], DataFrame] | None = None,
) -> AdInputs:
    """The snapshot of D that ``gold.ad_features``, ``gold.ad_items``, ``gold.ad_state`` and ``gold.ad_viewers`` share.

    Args:
        ad_events: ``bronze.ad_events`` rows (lineage honoured when present).
        products: ``bronze.products`` rows, or None (no category, price or text).
        events: ``bronze.events`` rows, or None (no viewer or item history).
        run_date: Day the snapshot is built for.
        history_days: Days of ad and clickstream events kept before D's midnight.
        keep: Caches the shared frames, so that the four tables' writes compute them once.

    Raises:
        ValueError: ``history_days`` is not positive.
    """
    if history_days < 1:
        raise ValueError(f"history_days must be >= 1, got {history_days}")
    keep = keep or _as_is
    impressions, clicks, conversions = (keep(df) for df in ad_snapshot(ad_events, run_date, history_days))
    catalogue = catalogue_before(products, run_date)
    catalogue = keep(catalogue) if catalogue is not None else None
    latest = keep(latest_listing(catalogue)) if catalogue is not None else None
    interest = keep(interest_events(events, run_date, history_days)) if events is not None else None
    return AdInputs(run_date, history_days, impressions, clicks, conversions, catalogue, latest, interest, keep)


def _rates(impressions: DataFrame, clicks: DataFrame, conversions: DataFrame, smoothing: Smoothing) -> DataFrame:
    """Per impression id, the smoothed historic rates of its item, campaign, placement, placement x item and viewer."""
    keys = [C.IMPRESSION_ID, C.USER_ID, C.ITEM_ID, C.CAMPAIGN_ID, C.PLACEMENT]
    base = impressions.select(*keys, C.EVENT_TS)

    def stream(df: DataFrame, ts: str, imp: int, clk: int, cnv: int) -> DataFrame:
        return df.select(*keys, F.unix_micros(F.col(ts)).alias(_TS), F.lit(imp).alias(_IMP), F.lit(clk).alias(_CLK), F.lit(cnv).alias(_CNV))

    rows = (
        stream(base, C.EVENT_TS, 1, 0, 0)
        .unionByName(stream(base.join(clicks, C.IMPRESSION_ID), _FIRST_CLICK, 0, 1, 0))
        .unionByName(stream(base.join(conversions, C.IMPRESSION_ID), _FIRST_CONVERSION, 0, 0, 1))
    )
    out = {}
    for name, group in (("item", [C.ITEM_ID]), ("campaign", [C.CAMPAIGN_ID]), ("placement", [C.PLACEMENT]),
                        ("placement_item", [C.PLACEMENT, C.ITEM_ID]), ("user", [C.USER_ID])):  # fmt: skip
        w = _earlier(*group)
        rows = rows.withColumns({f"_{name}{k}": F.sum(k).over(w) for k in (_IMP, _CLK, _CNV)})
        out[name] = tuple(F.coalesce(F.col(f"_{name}{k}"), F.lit(0)).cast("double") for k in (_IMP, _CLK, _CNV))
    known_user = F.col(C.USER_ID).isNotNull()
    user_imps, user_clicks, _ = out["user"]
    return rows.where(F.col(_IMP) == 1).select(
        C.IMPRESSION_ID,
        out["item"][0].alias(S.ITEM_IMPRESSIONS),
        smoothing.ctr(out["item"][1], out["item"][0]).alias(S.ITEM_CTR),
        smoothing.cvr(out["item"][2], out["item"][1]).alias(S.ITEM_CVR),
        smoothing.ctr(out["campaign"][1], out["campaign"][0]).alias(S.CAMPAIGN_CTR),
        smoothing.cvr(out["campaign"][2], out["campaign"][1]).alias(S.CAMPAIGN_CVR),
        smoothing.ctr(out["placement"][1], out["placement"][0]).alias(S.PLACEMENT_CTR),
        smoothing.cvr(out["placement"][2], out["placement"][1]).alias(S.PLACEMENT_CVR),
        smoothing.ctr(out["placement_item"][1], out["placement_item"][0]).alias(S.PLACEMENT_ITEM_CTR),
        F.when(known_user, user_imps).otherwise(F.lit(0.0)).alias(S.USER_AD_IMPRESSIONS),
        F.when(known_user, smoothing.ctr(user_clicks, user_imps)).otherwise(F.lit(smoothing.ctr_prior)).alias(S.USER_CTR),
    )


def catalogue_before(products: DataFrame | None, run_date: dt.date) -> DataFrame | None:
    """Product rows known before D: ``item_id, updated_at, category, price, title, description`` (one per item and time)."""
    if products is None:
        return None
    end = run_midnight(run_date)
    rows = latest_copies(landed_before(products, run_date), [C.ITEM_ID, C.UPDATED_AT]).where(F.col(C.UPDATED_AT) < F.lit(end))
    return rows.select(C.ITEM_ID, C.UPDATED_AT, C.CATEGORY, C.PRICE, C.TITLE, C.DESCRIPTION)


def latest_listing(catalogue: DataFrame) -> DataFrame:
    """Per item the latest product row's category, text, and the latest non-null price."""
    w = Window.partitionBy(C.ITEM_ID).orderBy(F.col(C.UPDATED_AT).desc())
    latest = catalogue.withColumn("_n", F.row_number().over(w)).where(F.col("_n") == 1).drop("_n", C.PRICE)
    price = catalogue.where(F.col(C.PRICE).isNotNull()).groupBy(C.ITEM_ID).agg(F.max_by(C.PRICE, C.UPDATED_AT).alias(C.PRICE))
    return latest.join(price, C.ITEM_ID, "left")


def _as_listed(impressions: DataFrame, catalogue: DataFrame | None) -> DataFrame:
    """Per impression id, the item's category and price of the latest product row at or before the impression."""
    if catalogue is None:
        return impressions.select(C.IMPRESSION_ID, F.lit(None).cast("string").alias(C.CATEGORY), F.lit(None).cast("double").alias(C.PRICE))
    listed = catalogue.select(
        F.lit(None).cast("string").alias(C.IMPRESSION_ID), C.ITEM_ID, F.unix_micros(C.UPDATED_AT).alias(_TS),
        F.lit(0).alias(_KIND), C.CATEGORY, C.PRICE,
    )  # fmt: skip
    shown = impressions.select(
        C.IMPRESSION_ID, C.ITEM_ID, F.unix_micros(C.EVENT_TS).alias(_TS), F.lit(1).alias(_KIND),
        F.lit(None).cast("string").alias(C.CATEGORY), F.lit(None).cast("double").alias(C.PRICE),
    )  # fmt: skip
    # A product row at the impression's very microsecond sorts first: it was listed when the ad was shown.
    upto = Window.partitionBy(C.ITEM_ID).orderBy(_TS, _KIND).rowsBetween(Window.unboundedPreceding, Window.currentRow)
    return (
        listed.unionByName(shown)
        .withColumns({C.CATEGORY: F.last(C.CATEGORY, ignorenulls=True).over(upto), C.PRICE: F.last(C.PRICE, ignorenulls=True).over(upto)})
        .where(F.col(_KIND) == 1)
        .select(C.IMPRESSION_ID, C.CATEGORY, C.PRICE)
    )


def interest_events(events: DataFrame, run_date: dt.date, history_days: int) -> DataFrame:
    """Clickstream events of :data:`INTEREST_TYPES` with an item, landed before D and shown within the window before D's midnight."""
    end = run_midnight(run_date)
    start = end - dt.timedelta(days=history_days)
    return latest_copies(landed_before(events, run_date), [C.EVENT_ID]).where(
        (F.col(C.EVENT_TS) < F.lit(end)) & (F.col(C.EVENT_TS) >= F.lit(start))
        & F.col(C.EVENT_TYPE).isin(*INTEREST_TYPES) & F.col(C.ITEM_ID).isNotNull()
    )  # fmt: skip


def _interest(impressions: DataFrame, listed: DataFrame, interest: DataFrame | None, latest: DataFrame | None) -> DataFrame:
    """Per impression id: the viewer's clickstream events before it, their share in the item's category, the item's events."""
    shown = impressions.select(C.IMPRESSION_ID, C.USER_ID, C.ITEM_ID, F.unix_micros(C.EVENT_TS).alias(_TS), F.lit(0).alias(_EV))
    shown = shown.join(listed.select(C.IMPRESSION_ID, C.CATEGORY), C.IMPRESSION_ID, "left")
    rows = shown
    if interest is not None:
        seen = interest.select(
            F.lit(None).cast("string").alias(C.IMPRESSION_ID),
            C.USER_ID,
            C.ITEM_ID,
            F.unix_micros(C.EVENT_TS).alias(_TS),
            F.lit(1).alias(_EV),
        )
        if latest is not None:
            seen = seen.join(latest.select(C.ITEM_ID, C.CATEGORY), C.ITEM_ID, "left")
        else:
            seen = seen.withColumn(C.CATEGORY, F.lit(None).cast("string"))
        rows = rows.unionByName(seen)
    user_events = F.coalesce(F.sum(_EV).over(_earlier(C.USER_ID)), F.lit(0)).cast("double")
    in_category = F.coalesce(F.sum(_EV).over(_earlier(C.USER_ID, C.CATEGORY)), F.lit(0)).cast("double")
    known_user, known_category = F.col(C.USER_ID).isNotNull(), F.col(C.CATEGORY).isNotNull()
    user_events = F.when(known_user, user_events).otherwise(F.lit(0.0))
    in_category = F.when(known_user & known_category, in_category).otherwise(F.lit(0.0))
    return (
        rows.withColumns(
            {
                S.USER_EVENTS: user_events,
                S.USER_CATEGORY_AFFINITY: (in_category + F.lit(1.0)) / (user_events + F.lit(AFFINITY_PSEUDO_EVENTS)),
                S.ITEM_VIEWS: F.coalesce(F.sum(_EV).over(_earlier(C.ITEM_ID)), F.lit(0)).cast("double"),
            }
        )  # fmt: skip
        .where(F.col(_EV) == 0)
        .select(C.IMPRESSION_ID, S.USER_EVENTS, S.USER_CATEGORY_AFFINITY, S.ITEM_VIEWS)
    )


def _propensity(impressions: DataFrame) -> Column:
    """The logged propensity, else the ad's share of its placement's impressions in the snapshot."""
    ad = Window.partitionBy(C.PLACEMENT, C.ITEM_ID, C.CAMPAIGN_ID)
    placement = Window.partitionBy(C.PLACEMENT)
    share = F.count(F.lit(1)).over(ad) / F.count(F.lit(1)).over(placement)
    return F.coalesce(F.col(C.PROPENSITY), share)


def compute_ad_features(
    inputs: AdInputs, maturity_days: int, smoothing: Smoothing, price_bands: Sequence[float]
) -> tuple[DataFrame, DataFrame]:
    """The rows of ``gold.ad_features`` and ``gold.ad_items`` for the run date of ``inputs`` (rules in the module docstring).

    Args:
        inputs: The snapshot of the run date (:func:`ad_inputs`).
        maturity_days: Age at which an impression's conversion label is final.
        smoothing: Priors of the historic rates.
        price_bands: Upper bounds of the price bands (``features.price_bands``).

    Returns:
        ``(ad_features, ad_items)``, each exactly the columns of its spec.

    Raises:
        ValueError: ``maturity_days`` is not positive.
    """
    if maturity_days < 1:
        raise ValueError(f"maturity_days must be >= 1, got {maturity_days}")
    run_date = inputs.run_date
    end = run_midnight(run_date)
    clicks, conversions = inputs.clicks, inputs.conversions
    # An impression's cost is its clicks'.
    impressions = inputs.keep(
        inputs.impressions.drop(C.COST)
        .withColumn(S.PROPENSITY_LOGGED, F.col(C.PROPENSITY).isNotNull())
        .withColumn(C.PROPENSITY, _propensity(inputs.impressions))
    )
    listed = _as_listed(impressions, inputs.catalogue)
    rows = (
        impressions.join(_rates(impressions, clicks, conversions, smoothing), C.IMPRESSION_ID)
        .join(listed, C.IMPRESSION_ID, "left")
        .join(_interest(impressions, listed, inputs.interest, inputs.latest), C.IMPRESSION_ID)
        .join(clicks, C.IMPRESSION_ID, "left")
        .join(conversions, C.IMPRESSION_ID, "left")
    )
    micros = F.unix_micros(F.col(C.EVENT_TS))
    matured = F.col(C.EVENT_TS) <= F.lit(end - dt.timedelta(days=maturity_days))
    features = conform(
        rows,
        S.AD_FEATURES,
        {
            C.POSITION: F.coalesce(F.col(C.POSITION), F.lit(1)),
            S.IMPRESSION_TS: F.col(C.EVENT_TS),
            # Integer arithmetic on the microseconds: UTC whatever the session time zone.
            S.HOUR: F.floor(F.pmod(micros, F.lit(MICROS_PER_DAY)) / F.lit(_MICROS_PER_HOUR)),
            C.PRICE_BAND: F.coalesce(price_band(F.col(C.PRICE), price_bands), F.lit(-1)),
            C.PRICE: F.coalesce(F.col(C.PRICE), F.lit(0.0)),
            C.COST: F.coalesce(F.col(C.COST), F.lit(0.0)),
            S.CLICK: F.when(F.col(_FIRST_CLICK).isNotNull(), F.lit(1)).otherwise(F.lit(0)),
            C.MATURED: matured,
            S.CONVERSION: F.when(matured, F.when(F.col(_FIRST_CONVERSION).isNotNull(), F.lit(1)).otherwise(F.lit(0))),
            C.RUN_DATE: F.lit(inputs.run_date),
        },
    )
    return features, compute_ad_items(inputs, price_bands)


def compute_ad_items(inputs: AdInputs, price_bands: Sequence[float]) -> DataFrame:
    """The rows of ``gold.ad_items`` for the run date of ``inputs``: every advertised item as listed last before it."""
    items = inputs.impressions.select(C.ITEM_ID).distinct()
    if inputs.latest is not None:
        items = items.join(inputs.latest, C.ITEM_ID, "left")
    else:
        items = items.withColumns({name: F.lit(None).cast("string") for name in (C.CATEGORY, C.TITLE, C.DESCRIPTION)}).withColumn(
            C.PRICE, F.lit(None).cast("double")
        )
    return conform(
        items,
        S.AD_ITEMS,
        {
            C.PRICE_BAND: F.coalesce(price_band(F.col(C.PRICE), price_bands), F.lit(-1)),
            S.AD_TEXT: item_text(F.col(C.TITLE), F.col(C.DESCRIPTION)),
            C.RUN_DATE: F.lit(inputs.run_date),
        },
    )
