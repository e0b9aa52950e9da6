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
* sponsored-product ads whose click-through rate depends on placement and on whether
  the advertised category is one of the viewer's favourites;
* support tickets whose text depends on their intent;
* an end-of-day inventory snapshot per catalogued item.

Everything is drawn from :class:`numpy.random.Generator` (PCG64) streams seeded from
``ShopParams.seed``, one stream per subsystem and day, so the same parameters give
byte-identical files. Timestamps are whole seconds, UTC.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoplake import columns as C
from shoplake.datagen.landing_writer import conform, write_landing
from shoplake.ingest import landing as L

logger = logging.getLogger(__name__)

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

# Category vocabularies: the words carry the category into titles, descriptions and queries.
_VOCAB: dict[str, dict[str, tuple[str, ...]]] = {
    "kitchen": {
        "nouns": (
            "frying pan",
            "saucepan",
            "knife set",
            "chef knife",
            "cutting board",
            "blender",
            "kettle",
            "toaster",
            "mixing bowl",
            "spatula",
            "colander",
            "coffee grinder",
        ),
        "adjs": ("non-stick", "stainless", "cast-iron", "ceramic", "bamboo", "copper"),
        "materials": ("stainless steel", "cast iron", "bamboo", "ceramic", "borosilicate glass", "copper"),
        "uses": ("everyday cooking", "baking", "meal prep", "family dinners", "small kitchens"),
        "features": ("dishwasher safe", "heat resistant handle", "induction compatible", "easy to clean", "bpa free"),
        "brands": ("Cookwell", "Panora", "Chefline", "Kitchara"),
        "variants": ("20 cm", "24 cm", "28 cm", "set of 3", "1.5 l"),
    },
    "garden": {
        "nouns": (
            "garden hose",
            "rake",
            "pruning shears",
            "watering can",
            "planter",
            "lawn mower",
            "garden gloves",
            "seed kit",
            "trowel",
            "wheelbarrow",
            "compost bin",
            "bird feeder",
        ),
        "adjs": ("weatherproof", "heavy-duty", "galvanised", "ergonomic", "foldable", "organic"),
        "materials": ("galvanised steel", "recycled plastic", "terracotta", "ash wood", "natural rubber"),
        "uses": ("vegetable beds", "balcony gardens", "lawn care", "flower borders"),
        "features": ("rust resistant", "uv stable", "lightweight", "frost proof"),
        "brands": ("Greenthumb", "Verdana", "Bloomfield", "Rootwise"),
        "variants": ("10 m", "25 m", "large", "small", "40 l"),
    },
    "electronics": {
        "nouns": (
            "headphones",
            "bluetooth speaker",
            "smartwatch",
            "power bank",
            "usb-c charger",
            "keyboard",
            "webcam",
            "monitor",
            "tablet",
            "earbuds",
            "router",
            "hdmi cable",
        ),
        "adjs": ("wireless", "noise-cancelling", "portable", "ultra-slim", "fast-charging", "4k"),
        "materials": ("aluminium", "tempered glass", "polycarbonate", "braided nylon"),
        "uses": ("the home office", "gaming", "travel", "streaming"),
        "features": ("30 hour battery", "bluetooth 5.3", "usb-c charging", "low latency"),
        "brands": ("Voltix", "Sonaro", "Pixelon", "Ampere Labs"),
        "variants": ("black", "white", "64 gb", "128 gb", "27 inch"),
    },
    "toys": {
        "nouns": (
            "building blocks",
            "jigsaw puzzle",
            "plush bear",
            "toy car",
            "doll house",
            "board game",
            "kite",
            "train set",
            "action figure",
            "craft kit",
            "water pistol",
            "robot kit",
        ),
        "adjs": ("educational", "colourful", "wooden", "remote-control", "glow-in-the-dark", "magnetic"),
        "materials": ("beech wood", "soft plush", "recycled plastic", "sturdy cardboard"),
        "uses": ("ages 3 and up", "family game night", "rainy afternoons", "birthday gifts"),
        "features": ("non-toxic paint", "500 pieces", "batteries included", "machine washable"),
        "brands": ("Playnest", "Tinkerbox", "Jollio", "Kidora"),
        "variants": ("500 pieces", "1000 pieces", "mini", "deluxe"),
    },
    "books": {
        "nouns": (
            "novel",
            "cookbook",
            "travel guide",
            "biography",
            "thriller",
            "fantasy saga",
            "poetry collection",
            "picture book",
            "history book",
            "self-help book",
            "graphic novel",
            "atlas",
        ),
        "adjs": ("bestselling", "illustrated", "hardcover", "paperback", "award-winning", "annotated"),
        "materials": ("recycled paper", "hardback binding", "matte cover"),
        "uses": ("bedtime reading", "long journeys", "book clubs", "gifts for readers"),
        "features": ("320 pages", "large print", "signed edition", "with maps"),
        "brands": ("Inkwell Press", "Paperlane", "Northpage", "Folio House"),
        "variants": ("hardcover", "paperback", "box set", "2nd edition"),
    },
    "beauty": {
        "nouns": (
            "face cream",
            "serum",
            "lipstick",
            "shampoo",
            "conditioner",
            "body lotion",
            "perfume",
            "nail polish",
            "face mask",
            "sunscreen",
            "eyeliner",
            "hair oil",
        ),
        "adjs": ("hydrating", "vegan", "fragrance-free", "anti-ageing", "organic", "matte"),
        "materials": ("hyaluronic acid", "shea butter", "argan oil", "vitamin c", "aloe vera"),
        "uses": ("dry skin", "the daily routine", "sensitive skin", "evening care"),
        "features": ("dermatologically tested", "cruelty free", "spf 30", "paraben free"),
        "brands": ("Lumiere", "Purelle", "Glowa", "Velvetine"),
        "variants": ("50 ml", "100 ml", "250 ml", "travel size"),
    },
    "sports": {
        "nouns": (
            "yoga mat",
            "dumbbell",
            "running shoes",
            "tennis racket",
            "football",
            "cycling helmet",
            "resistance bands",
            "water bottle",
            "gym bag",
            "jump rope",
            "kettlebell",
            "swim goggles",
        ),
        "adjs": ("lightweight", "breathable", "adjustable", "non-slip", "professional", "shock-absorbing"),
        "materials": ("neoprene", "carbon fibre", "mesh fabric", "natural rubber"),
        "uses": ("home workouts", "marathon training", "the gym", "outdoor cycling"),
        "features": ("sweat wicking", "anti-slip grip", "reflective details", "quick dry"),
        "brands": ("Stridex", "Peakform", "Athlos", "Kinetica"),
        "variants": ("5 kg", "10 kg", "size 42", "size 44"),
    },
    "fashion": {
        "nouns": (
            "t-shirt",
            "jeans",
            "summer dress",
            "hoodie",
            "sneakers",
            "scarf",
            "leather jacket",
            "sunglasses",
            "handbag",
            "wool coat",
            "belt",
            "ankle boots",
        ),
        "adjs": ("slim-fit", "oversized", "classic", "vintage", "cotton", "waterproof"),
        "materials": ("organic cotton", "merino wool", "genuine leather", "denim", "linen"),
        "uses": ("everyday wear", "the office", "weekends", "evening events"),
        "features": ("machine washable", "relaxed fit", "hidden pockets", "stretch fabric"),
        "brands": ("Modevia", "Urbanthread", "Norde", "Lanea"),
        "variants": ("size s", "size m", "size l", "navy", "black"),
    },
    "home": {
        "nouns": (
            "floor lamp",
            "cushion",
            "throw blanket",
            "curtains",
            "bed sheets",
            "picture frame",
            "vase",
            "rug",
            "scented candle",
            "storage box",
            "wall clock",
            "mirror",
        ),
        "adjs": ("cosy", "minimalist", "handmade", "scandinavian", "velvet", "rustic"),
        "materials": ("linen", "velvet", "oak", "rattan", "glass", "wool"),
        "uses": ("living rooms", "bedrooms", "small apartments", "housewarming gifts"),
        "features": ("easy to assemble", "dimmable", "hypoallergenic", "machine washable"),
        "brands": ("Hygga", "Casaluce", "Dwellin", "Nestory"),
        "variants": ("140x200", "grey", "beige", "set of 2"),
    },
    "pets": {
        "nouns": (
            "dog food",
            "cat litter",
            "dog leash",
            "cat tree",
            "pet bed",
            "chew toy",
            "bird seed",
            "aquarium filter",
            "scratching post",
            "dog collar",
            "pet shampoo",
            "treat pouch",
        ),
        "adjs": ("grain-free", "durable", "orthopaedic", "reflective", "natural", "clumping"),
        "materials": ("nylon webbing", "sisal rope", "memory foam", "natural rubber"),
        "uses": ("puppies", "senior dogs", "indoor cats", "daily walks"),
        "features": ("vet approved", "odour control", "tear resistant", "easy to clean"),
        "brands": ("Pawsome", "Furlo", "Tailwag", "Whiskerco"),
        "variants": ("2 kg", "10 kg", "medium", "large"),
    },
    "office": {
        "nouns": (
            "notebook",
            "ballpoint pen",
            "desk organiser",
            "stapler",
            "printer paper",
            "highlighter set",
            "desk lamp",
            "file folder",
            "whiteboard",
            "sticky notes",
            "calculator",
            "office chair",
        ),
        "adjs": ("ergonomic", "refillable", "recycled", "compact", "premium", "magnetic"),
        "materials": ("recycled paper", "brushed metal", "breathable mesh", "bamboo"),
        "uses": ("the home office", "school", "meetings", "daily planning"),
        "features": ("a4 size", "500 sheets", "adjustable height", "smudge free"),
        "brands": ("Deskly", "Papyra", "Officio", "Notable"),
        "variants": ("a4", "a5", "pack of 10", "blue"),
    },
    "automotive": {
        "nouns": (
            "car charger",
            "phone holder",
            "seat cover",
            "floor mats",
            "dash cam",
            "tyre inflator",
            "jump starter",
            "car wax",
            "wiper blades",
            "ice scraper",
            "roof box",
            "car vacuum",
        ),
        "adjs": ("universal", "heavy-duty", "all-weather", "compact", "12v", "magnetic"),
        "materials": ("rubber", "microfibre", "abs plastic", "synthetic leather"),
        "uses": ("road trips", "daily commuting", "winter driving", "family cars"),
        "features": ("easy installation", "fits most cars", "1080p recording", "fast charging"),
        "brands": ("Motorix", "Roadly", "Gearon", "Autova"),
        "variants": ("front", "rear", "set of 4", "12v"),
    },
}
CATEGORY_NAMES: tuple[str, ...] = tuple(_VOCAB)

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

_QUERY_TEMPLATES = ("{noun}", "{adj} {noun}", "{brand} {noun}", "{noun} {variant}", "best {noun}", "cheap {noun}", "{noun} for {use}")

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
_TICKET_TEMPLATES: dict[str, tuple[str, ...]] = {
    "track_order": (
        "Where is {order}? It has not arrived yet.",
        "Can you tell me the delivery status of {order}?",
        "I ordered the {item} {days} days ago and the tracking has not updated.",
        "When will the parcel with {order} be delivered? Still waiting.",
        "The tracking link for {order} shows nothing, where is my package?",
    ),
    "cancel_order": (
        "Please cancel {order}, I changed my mind.",
        "I want to cancel {order} before it ships.",
        "I ordered the {item} by mistake, please cancel it.",
        "Can I still cancel {order}? I no longer need the {item}.",
    ),
    "return_item": (
        "I would like to return the {item} from {order}.",
        "The {item} does not fit, how do I send it back?",
        "How can I return an item? It is about {order}.",
        "I need a return label for the {item}.",
        "Can I exchange the {item} or return it for another size?",
    ),
    "refund_status": (
        "I returned the {item} {days} days ago and still have no refund.",
        "When will I get my money back for {order}?",
        "The refund for {order} has not reached my bank account yet.",
        "What is the status of my refund? You confirmed it {days} days ago.",
    ),
    "change_address": (
        "I moved, please change the delivery address for {order}.",
        "Can I update the shipping address on {order}? The street name is wrong.",
        "Please send {order} to my work address instead of my home.",
        "Wrong postcode in my address, can you fix it before delivery?",
    ),
    "payment_issue": (
        "My card was charged twice for {order}.",
        "The payment failed but the money was taken from my account.",
        "I was charged {amount} but {order} shows as unpaid.",
        "Why was my card declined? I tried to pay three times.",
    ),
    "product_question": (
        "Does the {item} come with a warranty?",
        "What are the dimensions of the {item}?",
        "Is the {item} available in other colours or sizes?",
        "What material is the {item} made of?",
        "Is the {item} suitable for beginners? Any specifications?",
    ),
    "complaint": (
        "The {item} arrived broken and I am very disappointed.",
        "Terrible service, nobody answered my emails about {order}.",
        "The quality of the {item} is awful, nothing like the description.",
        "Your courier was rude and left the parcel in the rain. Unacceptable.",
    ),
}
_TICKET_OPENERS = ("", "Hi, ", "Hello, ", "Good morning, ", "Hey team, ", "Dear support, ")
_TICKET_CLOSERS = ("", " Thanks.", " Thank you!", " Regards.", " Please help.", " Kind regards, a customer.")
_RESOLUTIONS: dict[str, tuple[str, ...]] = {
    "track_order": (
        "Shared the tracking link; parcel in transit, arrives within 2 days.",
        "Checked with the courier: delivery scheduled for tomorrow.",
    ),
    "cancel_order": (
        "Order cancelled before shipping; full refund issued.",
        "Order already shipped; customer told to refuse the delivery.",
    ),
    "return_item": (
        "Return label emailed; refund after the item arrives at the warehouse.",
        "Exchange arranged; replacement ships once the return is scanned.",
    ),
    "refund_status": (
        "Refund confirmed; takes 3-5 business days to reach the account.",
        "Refund had failed; reissued to the original payment method.",
    ),
    "change_address": ("Delivery address updated before dispatch.", "Parcel already dispatched; redirect requested with the courier."),
    "payment_issue": ("Duplicate authorisation released by the bank within 5 days.", "Payment confirmed; order status corrected to paid."),
    "product_question": ("Answered with the product specifications.", "Pointed the customer to the size guide and warranty terms."),
    "complaint": ("Apologised and issued a 10% voucher.", "Replacement sent and the courier issue escalated."),
}

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
        ad_conversion_rate: Share of ad clicks that convert.
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
    ad_impressions_per_session: float = 2.0
    affinity_ctr_multiplier: float = 2.5
    ad_conversion_rate: float = 0.1
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


class _Shop:
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
        self._init_inventory()
        self._init_counters()

    # ----------------------------------------------------------------- set-up

    def _build_catalog(self) -> None:
        p, rng, n, nc = self.p, _rng(self.p.seed, _S_CATALOG), self.p.items, self.n_cat
        # The first item of every category is on sale from day 0, so no category is ever empty.
        cat_p = rng.dirichlet(np.full(nc, 6.0))
        cat = np.concatenate([np.arange(nc), rng.choice(nc, size=n - nc, p=cat_p)]).astype(np.int64)
        medians = np.array([_MEDIAN_PRICE[c] for c in self.cats])
        price = _shop_price(medians[cat] * rng.lognormal(0.0, 0.5, n) + 1.0)
        launch = np.zeros(n, dtype=np.int64)
        rest = np.arange(nc, n)
        n_new = int(round(p.new_item_rate * n)) if p.days > 1 else 0
        new = rng.choice(rest, size=min(n_new, len(rest)), replace=False) if n_new else np.array([], np.int64)
        launch[new] = rng.integers(1, max(p.days, 2), size=len(new))
        day0_rest = rest[launch[rest] == 0]
        n_cheap = min(max(2, int(round(p.cheap_item_rate * n))), len(day0_rest)) if p.cheap_item_rate > 0 else 0
        cheap = np.sort(rng.choice(day0_rest, size=n_cheap, replace=False)) if n_cheap else np.array([], np.int64)
        price[cheap] = rng.choice(_CHEAP_PRICES, size=len(cheap))
        tier = np.zeros(n, dtype=np.int64)
        for c in range(nc):
            members = np.flatnonzero(cat == c)
            ranks = np.empty(len(members), dtype=np.int64)
            ranks[np.argsort(price[members], kind="stable")] = np.arange(len(members))
            tier[members] = (3 * ranks) // len(members)
        self.cat, self.base_price, self.launch, self.tier = cat, price, launch, tier
        self.cheap = np.zeros(n, dtype=bool)
        self.cheap[cheap] = True
        self.pop = rng.lognormal(0.0, 0.8, n)
        self.lead = rng.integers(2, 11, n)
        self.unit_cost = _round2(price * rng.uniform(0.35, 0.65, n))

        brands, nouns, titles, descs = [], [], [], []
        for i in range(n):
            v = _VOCAB[self.cats[cat[i]]]
            b = v["brands"][rng.integers(len(v["brands"]))]
            noun = v["nouns"][rng.integers(len(v["nouns"]))]
            adj = v["adjs"][rng.integers(len(v["adjs"]))]
            title = f"{b} {adj.capitalize()} {noun}"
            if rng.random() < 0.6:
                title += f", {v['variants'][rng.integers(len(v['variants']))]}"
            f1, f2 = rng.choice(len(v["features"]), size=2, replace=False)
            desc = (
                f"{adj.capitalize()} {noun} made of {v['materials'][rng.integers(len(v['materials']))]}. "
                f"{v['features'][f1].capitalize()} and {v['features'][f2]}. "
                f"Ideal for {v['uses'][rng.integers(len(v['uses']))]}."
            )
            brands.append(b)
            nouns.append(noun)
            titles.append(title)
            descs.append(desc)
        self.brand, self.noun, self.title, self.desc = brands, nouns, titles, descs
        width = max(5, len(str(n)))
        self.item_ids = np.array([f"i{k:0{width}d}" for k in range(1, n + 1)] + [None], dtype=object)
        self.group_members = [np.flatnonzero((cat == g // 3) & (tier == g % 3)) for g in range(3 * nc)]
        self.cat_members = [np.flatnonzero(cat == c) for c in range(nc)]
        self.expensive = tier == 2

    def _build_users(self) -> None:
        rng, nu, nc = _rng(self.p.seed, _S_USERS), self.p.users, self.n_cat
        # A favourite is only a signal if some categories are not favourites.
        n_fav = np.minimum(rng.choice([1, 2, 3], size=nu, p=[0.35, 0.4, 0.25]), nc - 1)
        order = rng.permuted(np.tile(np.arange(nc), (nu, 1)), axis=1)
        ranks = np.arange(nc)[None, :]
        w = np.where(ranks < n_fav[:, None], 0.55**ranks, 0.0)
        w /= w.sum(axis=1, keepdims=True)
        # Most of a user's attention goes to the favourites; the rest is spread evenly.
        taste = np.full((nu, nc), 0.2 / nc)
        np.add.at(taste, (np.repeat(np.arange(nu), nc), order.ravel()), 0.8 * w.ravel())
        self.taste = taste
        self.n_fav = n_fav
        self.fav_order = order
        self.fav_mask = np.zeros((nu, nc), dtype=bool)
        for r in range(int(n_fav.max())):
            rows = np.flatnonzero(n_fav > r)
            self.fav_mask[rows, order[rows, r]] = True
        self.level = rng.choice(3, size=nu, p=[0.35, 0.45, 0.2])
        self.activity = rng.lognormal(0.0, 0.7, nu)
        self.act_cdf = np.cumsum(self.activity)
        self.country = rng.choice(len(_COUNTRIES), size=nu, p=_COUNTRY_P / _COUNTRY_P.sum())
        self.method = rng.choice(len(L.PAYMENT_METHODS), size=nu, p=[0.7, 0.25, 0.05])
        self.user_width = max(5, len(str(2 * nu)))
        self.user_ids = np.array([f"u{k:0{self.user_width}d}" for k in range(1, nu + 1)] + [None], dtype=object)
        self.n_accounts = nu  # fraud accounts are numbered after the registered users
        self.card_seq = 0
        self.device_seq = 0
        self.card = np.array([self._new_card() for _ in range(nu)], dtype=object)
        self.device = np.array([self._new_device() for _ in range(nu)], dtype=object)
        self.ip = np.array([self._new_ip(rng) for _ in range(nu)], dtype=object)

    def _new_card(self) -> str:
        self.card_seq += 1
        return f"card{self.card_seq:08d}"

    def _new_device(self) -> str:
        self.device_seq += 1
        return f"dev{self.device_seq:08d}"

    @staticmethod
    def _new_ip(rng: np.random.Generator) -> str:
        a, b, c, d = rng.integers(1, 255, size=4)
        return f"{a}.{b}.{c}.{d}"

    def _new_account(self) -> tuple[int, str]:
        """A fraud account: index into ``user_ids`` and its id."""
        self.n_accounts += 1
        uid = f"u{self.n_accounts:0{self.user_width}d}"
        self.user_ids = np.concatenate([self.user_ids[:-1], np.array([uid, None], dtype=object)])
        self.fraud_accounts.append(uid)
        return len(self.user_ids) - 2, uid

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

    def _expected_daily_units(self) -> np.ndarray:
        """Expected units sold per item and day at average demand, to size stock and reorders."""
        p = self.p
        w = self.activity / self.activity.sum()
        share = (self.taste * w[:, None]).T @ _TIER_P[self.level]  # categories x tiers
        group_pop = np.zeros(3 * self.n_cat)
        np.add.at(group_pop, self.cat * 3 + self.tier, self.pop)
        p_view = share[self.cat, self.tier] * self.pop / group_pop[self.cat * 3 + self.tier]
        views_per_day = p.sessions_per_user_day * p.users * (1.0 + _MEAN_EXTRA_VIEWS)
        return views_per_day * p_view * _P_CLICK * _P_CART * _P_BUY * (1.0 + 1.5 * _P_MULTI_UNIT)

    def _init_inventory(self) -> None:
        p, n = self.p, self.p.items
        rng = _rng(p.seed, _S_PLAN, 1)
        self.ewma = self._expected_daily_units()
        self.init_stock = np.ceil(self.ewma * rng.uniform(14, 35, n)).astype(np.int64) + 20
        self.on_hand = np.zeros(n, dtype=np.int64)
        self.on_order = np.zeros(n, dtype=np.int64)
        self.arrivals = np.zeros((n, p.days + 40), dtype=np.int64)
        self.blocked_until = np.full(n, -1, dtype=np.int64)
        self.list_price = self.base_price.copy()
        self.dis_by_day: dict[int, list[dict]] = {}
        for dis in self.disruptions:
            self.dis_by_day.setdefault(dis["start"], []).append(dis)
        self.stockout_days: dict[int, list[int]] = {}

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

    def _products_today(self, d: int, day_s: int) -> pa.Table:
        changed = set()
        for i, factor in self.price_changes.get(d, []):
            old = float(self.list_price[i])
            new = float(_shop_price(np.array([old * factor]))[0])
            if new != old:
                self.list_price[i] = new
                self.price_change_log.append(
                    {"item_id": self.item_ids[i], "date": self.dates[d].isoformat(), "old_price": old, "new_price": new}
                )
                changed.add(i)
        disc = self.promo_disc[d]
        self.price_today = _round2(self.list_price * (1.0 - disc))
        self.launched = self.launch <= d
        if d == 0:
            rows = np.flatnonzero(self.launched)
        else:
            moved = (disc != self.promo_disc[d - 1]) | (self.launch == d)
            rows = np.union1d(np.flatnonzero(moved & self.launched), np.array(sorted(changed), dtype=np.int64))
        rows = rows.astype(np.int64)
        return pa.table(
            {
                C.ITEM_ID: _strings(self.item_ids[rows]),
                C.TITLE: _strings([self.title[i] for i in rows]),
                C.DESCRIPTION: _strings([self.desc[i] for i in rows]),
                C.CATEGORY: _strings([self.cats[self.cat[i]] for i in rows]),
                C.BRAND: _strings([self.brand[i] for i in rows]),
                C.PRICE: pa.array(self.price_today[rows], pa.float64()),
                C.ON_PROMOTION: pa.array(disc[rows] > 0, pa.bool_()),
                C.UPDATED_AT: _ts(np.full(len(rows), day_s)),
            }
        )

    def _open_stock(self, d: int) -> np.ndarray:
        arriving_new = self.launch == d
        self.on_hand[arriving_new] += self.init_stock[arriving_new]
        for dis in self.dis_by_day.get(d, []):
            i, e = dis["item"], dis["end"]
            # A damaged batch is written off and the supplier holds deliveries until the window ends.
            self.on_hand[i] = 0
            held = int(self.arrivals[i, d : e + 1].sum())
            self.arrivals[i, d : e + 1] = 0
            self.arrivals[i, e + 1] += held
            if held == 0:
                qty = self._order_qty(np.array([i]))[0]
                self.arrivals[i, e + 1] += qty
                self.on_order[i] += qty
            self.blocked_until[i] = e
        received = self.arrivals[:, d]
        self.on_hand += received
        self.on_order -= received
        opening = np.where(self.launched, self.on_hand, 0)
        for i in np.flatnonzero(self.launched & (opening == 0)):
            self.stockout_days.setdefault(int(i), []).append(d)
        return opening

    def _order_qty(self, items: np.ndarray) -> np.ndarray:
        return np.maximum(np.ceil(self.ewma[items] * 21), 10).astype(np.int64)

    def _pick_items(self, cat: np.ndarray, tier: np.ndarray, u: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """Items for rows of (category, price tier), by ``weight`` within the group."""
        out = np.empty(len(cat), dtype=np.int64)
        key = cat * 3 + tier
        order = np.argsort(key, kind="stable")
        bounds = np.searchsorted(key[order], np.arange(3 * self.n_cat + 1))
        for g in range(3 * self.n_cat):
            lo, hi = bounds[g], bounds[g + 1]
            if lo == hi:
                continue
            rows = order[lo:hi]
            members = self.group_members[g]
            if weight[members].sum() <= 0:
                # Small catalogues can leave a price tier empty for a while; fall back to the category.
                members = self.cat_members[g // 3]
            cs = np.cumsum(weight[members])
            out[rows] = members[np.minimum(np.searchsorted(cs, u[rows] * cs[-1], side="right"), len(cs) - 1)]
        return out

    def _sessions(self, d: int, day_s: int, opening: np.ndarray) -> dict:
        p, rng = self.p, _rng(self.p.seed, _S_SESSIONS, d)
        n_s = int(rng.poisson(p.sessions_per_user_day * p.users * self.day_mult[d]))
        su = np.minimum(np.searchsorted(self.act_cdf, rng.random(n_s) * self.act_cdf[-1], side="right"), p.users - 1)
        cum = np.cumsum(self.taste[su] * self.cat_season[d][None, :], axis=1)
        scat = _pick_cdf(cum, rng.random(n_s))
        hour = rng.choice(len(_HOUR_WEIGHTS), size=n_s, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
        sstart = hour * 3600 + rng.integers(0, 3600, n_s)
        has_search = rng.random(n_s) < _P_SEARCH
        n_views = 1 + np.minimum(rng.poisson(_MEAN_EXTRA_VIEWS, n_s), _MAX_VIEWS - 1)

        vs = np.repeat(np.arange(n_s), n_views)
        nv = len(vs)
        vcat = scat[vs].copy()
        drift = np.flatnonzero(rng.random(nv) < _P_DRIFT)
        vcat[drift] = _pick_cdf(cum[vs[drift]], rng.random(len(drift)))
        tier_cum = np.cumsum(_TIER_P[self.level[su[vs]]], axis=1)
        vtier = _pick_cdf(tier_cum, rng.random(nv))
        on_promo = self.promo_disc[d] > 0
        weight = np.where(self.launched, self.pop * np.where(on_promo, p.promo_boost, 1.0), 0.0)
        vitem = self._pick_items(vcat, vtier, rng.random(nv), weight)
        deal_items = np.flatnonzero(on_promo & self.launched)
        deal = np.flatnonzero(rng.random(nv) < _P_DEAL) if len(deal_items) else np.array([], np.int64)
        if len(deal):
            # A promoted item alone in its price tier gains nothing from its weight there; the deals page lifts it.
            cs_deal = np.cumsum(self.pop[deal_items])
            pick = np.searchsorted(cs_deal, rng.random(len(deal)) * cs_deal[-1], side="right")
            vitem[deal] = deal_items[np.minimum(pick, len(deal_items) - 1)]

        gaps = rng.integers(20, 200, nv)
        cs = np.cumsum(gaps)
        first = _segment_starts(n_views)
        offset = cs - (cs[first] - gaps[first])[vs]
        vts = day_s + sstart[vs] + offset
        clicked = rng.random(nv) < _P_CLICK
        cts = vts + rng.integers(2, 15, nv)
        p_cart = _P_CART * np.where(on_promo[vitem], _PROMO_CART_LIFT, 1.0)
        carted = clicked & (rng.random(nv) < p_cart)
        ats = cts + rng.integers(5, 40, nv)
        wants = carted & (rng.random(nv) < _P_BUY)
        qty_all = 1 + (rng.random(nv) < _P_MULTI_UNIT) * rng.integers(1, 3, nv)
        last = offset[first + n_views - 1]
        checkout = day_s + sstart + last + 60 + rng.integers(30, 300, n_s)

        # One order line per item and session, bought at checkout while stock lasts.
        cand = np.flatnonzero(wants)
        _, keep_first = np.unique(vs[cand] * p.items + vitem[cand], return_index=True)
        cand = np.sort(cand[keep_first])
        c_item, c_qty, c_ts = vitem[cand], qty_all[cand], checkout[vs[cand]]
        by_item = np.lexsort((cand, c_ts, c_item))
        q_sorted = c_qty[by_item]
        cum_q = np.cumsum(q_sorted)
        item_sorted = c_item[by_item]
        grp_first = np.r_[True, item_sorted[1:] != item_sorted[:-1]]
        base = np.maximum.accumulate(np.where(grp_first, cum_q - q_sorted, 0))
        fits = np.empty(len(cand), dtype=bool)
        fits[by_item] = (cum_q - base) <= opening[item_sorted]
        self.attempted = np.bincount(c_item, weights=c_qty, minlength=p.items)
        bought = cand[fits]

        order_sessions, order_of_line = np.unique(vs[bought], return_inverse=True)
        lines = _Lines(
            order=order_of_line.astype(np.int64),
            item=vitem[bought],
            qty=qty_all[bought],
            price=self.price_today[vitem[bought]],
            ts=checkout[vs[bought]],
        )

        n_search = int(has_search.sum())
        search_sessions = np.flatnonzero(has_search)
        qcat = scat[search_sessions]
        queries = self._queries(rng, qcat)

        return {
            "session_user": su,
            "session_num": self._next("session", n_s),
            "view_session": vs,
            "view_item": vitem,
            "view_ts": vts,
            "clicked": clicked,
            "click_ts": cts,
            "carted": carted,
            "cart_ts": ats,
            "search_session": search_sessions,
            "search_ts": day_s + sstart[search_sessions],
            "queries": queries,
            "n_search": n_search,
            "lines": lines,
            "order_user": su[order_sessions],
            "order_session": order_sessions,
            "order_ts": checkout[order_sessions],
        }

    def _queries(self, rng: np.random.Generator, cats: np.ndarray) -> list[str]:
        """Search texts made of the words of each search's category."""
        n = len(cats)
        template = rng.integers(len(_QUERY_TEMPLATES), size=n)
        # One uniform per slot, scaled to each category's word list, keeps the draws vectorized.
        slots = (("noun", "nouns"), ("adj", "adjs"), ("brand", "brands"), ("variant", "variants"), ("use", "uses"))
        u = rng.random((n, len(slots)))
        out = []
        for k in range(n):
            v = _VOCAB[self.cats[cats[k]]]
            words = {key: v[name][int(u[k, j] * len(v[name]))] for j, (key, name) in enumerate(slots)}
            out.append(_QUERY_TEMPLATES[template[k]].format(**words).lower())
        return out

    def _fraud(self, d: int, day_s: int, remaining: np.ndarray, n_legit: int) -> dict:
        """Fraudulent orders of the day; they buy from whatever stock legitimate customers left."""
        p, rng = self.p, _rng(self.p.seed, _S_FRAUD, d)
        out = {"orders": [], "lines": []}
        if p.fraud_rate <= 0:
            return out
        target = n_legit * p.fraud_rate / (1.0 - p.fraud_rate)
        sizes = {"stolen_card_burst": (0.35, 4.5), "account_takeover": (0.25, 1.5), "card_testing": (0.4, 16.0)}
        for pat in FRAUD_PATTERNS:
            share, size = sizes[pat]
            k = int(rng.poisson(target * share / size)) + int(self.forced_fraud_day[pat] == d)
            for _ in range(k):
                getattr(self, f"_fraud_{pat}")(rng, day_s, remaining, out)
                self.fraud_incidents[-1]["date"] = self.dates[d].isoformat()
        return out

    def _take_stock(self, rng, pool: np.ndarray, remaining: np.ndarray, n_lines: int, max_qty: int):
        avail = pool & (remaining > 0) & self.launched
        items = np.flatnonzero(avail)
        if len(items) == 0:
            return []
        chosen = rng.choice(items, size=min(n_lines, len(items)), replace=False)
        lines = []
        for i in np.sort(chosen):
            q = int(min(remaining[i], rng.integers(1, max_qty + 1)))
            remaining[i] -= q
            lines.append((int(i), q))
        return lines

    def _add_fraud_order(self, out, pattern, user, ts, lines, card, device, ip, billing, shipping, incident) -> None:
        out["orders"].append(
            {
                "pattern": pattern,
                "user": user,
                "ts": ts,
                "card": card,
                "device": device,
                "ip": ip,
                "billing": billing,
                "shipping": shipping,
                "incident": incident,
            }
        )
        for i, q in lines:
            out["lines"].append((len(out["orders"]) - 1, i, q))

    def _other_country(self, rng, country: str) -> str:
        options = [c for c in _WORLD if c != country]
        return options[rng.integers(len(options))]

    def _fraud_stolen_card_burst(self, rng, day_s, remaining, out) -> None:
        user, uid = self._new_account()
        card, device, ip = self._new_card(), self._new_device(), self._new_ip(rng)
        billing = _COUNTRIES[rng.integers(len(_COUNTRIES))]
        shipping = self._other_country(rng, billing)
        start = day_s + int(rng.integers(120, _SECONDS_PER_DAY - 3600))
        incident = {
            "pattern": "stolen_card_burst",
            "user_id": uid,
            "card_ids": [card],
            "device_id": device,
            "ip_address": ip,
            "payment_ids": [],
        }
        for t in np.sort(rng.integers(0, 3300, int(rng.integers(3, 7)))):
            lines = self._take_stock(rng, self.expensive, remaining, int(rng.integers(1, 3)), 2)
            if lines:
                self._add_fraud_order(out, "stolen_card_burst", user, start + int(t), lines, card, device, ip, billing, shipping, incident)
        self.fraud_incidents.append(incident)

    def _fraud_account_takeover(self, rng, day_s, remaining, out) -> None:
        user = int(np.minimum(np.searchsorted(self.act_cdf, rng.random() * self.act_cdf[-1], side="right"), self.p.users - 1))
        device, ip = self._new_device(), self._new_ip(rng)
        billing = _COUNTRIES[self.country[user]]
        shipping = self._other_country(rng, billing)
        card = self.card[user]
        start = day_s + int(rng.integers(120, _SECONDS_PER_DAY - 3600))
        incident = {
            "pattern": "account_takeover",
            "user_id": self.user_ids[user],
            "card_ids": [card],
            "device_id": device,
            "ip_address": ip,
            "payment_ids": [],
        }
        for t in np.sort(rng.integers(0, 3300, int(rng.integers(1, 3)))):
            lines = self._take_stock(rng, self.expensive, remaining, int(rng.integers(1, 4)), 2)
            if lines:
                self._add_fraud_order(out, "account_takeover", user, start + int(t), lines, card, device, ip, billing, shipping, incident)
        self.fraud_incidents.append(incident)

    def _fraud_card_testing(self, rng, day_s, remaining, out) -> None:
        user, uid = self._new_account()
        device, ip = self._new_device(), self._new_ip(rng)
        shipping = _WORLD[rng.integers(len(_WORLD))]
        start = day_s + int(rng.integers(120, _SECONDS_PER_DAY - 900))
        incident = {"pattern": "card_testing", "user_id": uid, "card_ids": [], "device_id": device, "ip_address": ip, "payment_ids": []}
        for t in np.sort(rng.integers(0, 600, int(rng.integers(8, 26)))):
            lines = self._take_stock(rng, self.cheap, remaining, 1, 1)
            if not lines:
                break
            card = self._new_card()
            incident["card_ids"].append(card)
            billing = _COUNTRIES[rng.integers(len(_COUNTRIES))]
            self._add_fraud_order(out, "card_testing", user, start + int(t), lines, card, device, ip, billing, shipping, incident)
        self.fraud_incidents.append(incident)

    def _orders_and_payments(self, d: int, day_s: int, sess: dict, fraud: dict):
        p, rng = self.p, _rng(self.p.seed, _S_PAYMENTS, d)
        legit_lines: _Lines = sess["lines"]
        n_legit = len(sess["order_user"])
        fo = fraud["orders"]
        n_orders = n_legit + len(fo)
        # Fraudulent lines are appended after the legitimate ones; order index n_legit + k is fraud order k.
        fl = np.array(fraud["lines"], dtype=np.int64).reshape(-1, 3)
        f_ts = np.array([o["ts"] for o in fo], dtype=np.int64)
        line_order = np.concatenate([legit_lines.order, n_legit + fl[:, 0]])
        line_item = np.concatenate([legit_lines.item, fl[:, 1]])
        line_qty = np.concatenate([legit_lines.qty, fl[:, 2]])
        line_price = np.concatenate([legit_lines.price, self.price_today[fl[:, 1]]])
        o_user = np.concatenate([sess["order_user"], np.array([o["user"] for o in fo], dtype=np.int64)])
        o_ts = np.concatenate([sess["order_ts"], f_ts])

        # Order ids follow time so that a later order never has a smaller number.
        rank = np.empty(n_orders, dtype=np.int64)
        rank[np.lexsort((np.arange(n_orders), o_ts))] = np.arange(n_orders)
        order_ids = np.empty(n_orders, dtype=object)
        nums = self._next("order", n_orders)
        order_ids[:] = _ids("o", nums, 8).to_numpy(zero_copy_only=False)[rank] if n_orders else []
        line_sort = np.lexsort((line_item, rank[line_order]))
        line_order, line_item = line_order[line_sort], line_item[line_sort]
        line_qty, line_price = line_qty[line_sort], line_price[line_sort]
        starts = np.r_[0, np.flatnonzero(np.diff(line_order)) + 1] if len(line_order) else np.array([], np.int64)
        counts = np.diff(np.r_[starts, len(line_order)])
        line_no = np.arange(len(line_order)) - np.repeat(starts, counts) + 1

        # Shipping country per order: the customer's own, a few gifts abroad, and the fraudster's choice.
        legit_billing = np.array(_COUNTRIES, dtype=object)[self.country[sess["order_user"]]]
        legit_shipping = legit_billing.copy()
        gifts = np.flatnonzero(rng.random(n_legit) < 0.02)
        for k in gifts:
            legit_shipping[k] = self._other_country(rng, legit_shipping[k])
        billing = np.concatenate([legit_billing, np.array([o["billing"] for o in fo], dtype=object)])
        shipping = np.concatenate([legit_shipping, np.array([o["shipping"] for o in fo], dtype=object)])

        orders = pa.table(
            {
                C.ORDER_ID: _strings(order_ids[line_order]),
                C.LINE_NUMBER: pa.array(line_no, pa.int32()),
                C.USER_ID: _strings(self.user_ids[o_user[line_order]]),
                C.ITEM_ID: _strings(self.item_ids[line_item]),
                C.QUANTITY: pa.array(line_qty, pa.int32()),
                C.UNIT_PRICE: pa.array(line_price, pa.float64()),
                C.ORDER_TS: _ts(o_ts[line_order]),
                C.STATUS: _strings(np.full(len(line_order), _PLACED, dtype=object)),
                C.COUNTRY: _strings(shipping[line_order]),
            }
        )
        self._schedule_order_changes(d, rng, orders, line_order < n_legit)

        amount = _round2(np.bincount(line_order, weights=line_qty * line_price, minlength=n_orders))
        pay_ts = o_ts + rng.integers(5, 60, n_orders)
        card = np.empty(n_orders, dtype=object)
        device = np.empty(n_orders, dtype=object)
        ip = np.empty(n_orders, dtype=object)
        method = np.empty(n_orders, dtype=object)
        lu = sess["order_user"]
        new_card = rng.random(n_legit) < 0.005
        new_dev = rng.random(n_legit) < p.new_device_rate
        new_ip = rng.random(n_legit) < 0.05
        # Legitimate customers sometimes get a new card or phone and keep using it afterwards.
        for k in np.flatnonzero(new_card | new_dev | new_ip):
            u = lu[k]
            if new_card[k]:
                self.card[u] = self._new_card()
            if new_dev[k]:
                self.device[u] = self._new_device()
                self.ip[u] = self._new_ip(rng)
            elif new_ip[k]:
                ip[k] = self._new_ip(rng)
        card[:n_legit] = self.card[lu]
        device[:n_legit] = self.device[lu]
        keep_ip = ~(new_ip & ~new_dev)
        ip[:n_legit][keep_ip] = self.ip[lu][keep_ip]
        method[:n_legit] = np.array(L.PAYMENT_METHODS, dtype=object)[self.method[lu]]
        for k, o in enumerate(fo):
            card[n_legit + k], device[n_legit + k], ip[n_legit + k] = o["card"], o["device"], o["ip"]
            method[n_legit + k] = L.PAYMENT_METHODS[0]
        pay_nums = self._next("payment", n_orders)
        pay_ids = np.empty(n_orders, dtype=object)
        pay_ids[:] = _ids("p", pay_nums, 8).to_numpy(zero_copy_only=False)[rank] if n_orders else []
        for k, o in enumerate(fo):
            pid = pay_ids[n_legit + k]
            self.fraud_ids[o["pattern"]].append(pid)
            o["incident"]["payment_ids"].append(pid)

        by_time = np.argsort(rank)
        payments = pa.table(
            {
                C.PAYMENT_ID: _strings(pay_ids[by_time]),
                C.ORDER_ID: _strings(order_ids[by_time]),
                C.USER_ID: _strings(self.user_ids[o_user[by_time]]),
                C.AMOUNT: pa.array(amount[by_time], pa.float64()),
                C.CURRENCY: _strings(np.full(n_orders, p.currency, dtype=object)),
                C.PAYMENT_METHOD: _strings(method[by_time]),
                C.CARD_ID: _strings(card[by_time]),
                C.DEVICE_ID: _strings(device[by_time]),
                C.IP_ADDRESS: _strings(ip[by_time]),
                C.BILLING_COUNTRY: _strings(billing[by_time]),
                C.SHIPPING_COUNTRY: _strings(shipping[by_time]),
                C.PAYMENT_TS: _ts(pay_ts[by_time]),
            }
        )
        self._schedule_chargebacks(d, rng, pay_ids, amount, pay_ts, n_legit, [o["pattern"] for o in fo])

        # Fraudsters browse a little before buying, so every purchase has its funnel.
        f_line_mask = line_order >= n_legit
        f_items = line_item[f_line_mask]
        f_orders = line_order[f_line_mask]
        f_sessions = self._next("session", len(fo))
        f_ts_lines = o_ts[f_orders]
        extra = {
            "user": np.concatenate([o_user[f_orders]] * 3),
            "session": np.concatenate([f_sessions[f_orders - n_legit]] * 3) if len(fo) else np.array([], np.int64),
            "type": np.repeat(np.array([_VIEW, _CART, _PURCHASE]), len(f_items)),
            "item": np.concatenate([f_items] * 3),
            "ts": np.concatenate([f_ts_lines - 90, f_ts_lines - 45, f_ts_lines]),
        }
        first_item = np.zeros(n_orders, dtype=np.int64)
        first_item[line_order[starts]] = line_item[starts]
        refs = {"order_id": order_ids[:n_legit], "user": lu, "item": first_item[:n_legit], "amount": amount[:n_legit]}
        return orders, payments, extra, refs

    def _schedule_order_changes(self, d: int, rng, orders: pa.Table, legit: np.ndarray) -> None:
        p = self.p
        u = rng.random(orders.num_rows)
        cancel = legit & (u < p.cancel_rate)
        ret = legit & ~cancel & (u < p.cancel_rate + p.return_rate)
        for mask, status, lo, hi in ((cancel, _CANCELLED, 1, 4), (ret, _RETURNED, 5, 21)):
            idx = np.flatnonzero(mask)
            if len(idx) == 0:
                continue
            later = d + rng.integers(lo, hi, len(idx))
            secs = self.day0_s + later * _SECONDS_PER_DAY + rng.integers(0, _SECONDS_PER_DAY, len(idx))
            rows = orders.take(pa.array(idx))
            for day in np.unique(later):
                if day >= p.days:
                    continue
                sel = np.flatnonzero(later == day)
                part = rows.take(pa.array(sel))
                part = part.set_column(part.schema.get_field_index(C.ORDER_TS), C.ORDER_TS, _ts(secs[sel]))
                part = part.set_column(part.schema.get_field_index(C.STATUS), C.STATUS, _strings(np.full(len(sel), status, dtype=object)))
                self.pending_orders.setdefault(int(day), []).append(part)
                self.counts["cancelled_lines" if status == _CANCELLED else "returned_lines"] += len(sel)

    def _schedule_chargebacks(self, d, rng, pay_ids, amount, pay_ts, n_legit, patterns) -> None:
        p = self.p
        n = len(pay_ids)
        u = rng.random(n)
        hit = np.concatenate([u[:n_legit] < p.friendly_fraud_rate, u[n_legit:] < p.fraud_chargeback_rate])
        idx = np.flatnonzero(hit)
        lo, hi = p.chargeback_delay_days
        delay = rng.integers(lo, hi + 1, len(idx))
        secs = rng.integers(0, _SECONDS_PER_DAY, len(idx))
        # Ids are handed out in payment-time order so reruns with other knobs keep them stable per day.
        idx_order = np.argsort(pay_ts[idx], kind="stable")
        cb_nums = self._next("chargeback", len(idx))
        for j, k in enumerate(idx[idx_order]):
            pos = idx_order[j]
            arrival = d + int(delay[pos])
            fraud = k >= n_legit
            cb = {
                "chargeback_id": f"cb{cb_nums[j]:08d}",
                "payment_id": pay_ids[k],
                "reason_code": REASON_FRAUD if fraud else REASON_NOT_RECEIVED,
                "amount": float(amount[k]),
                "ts": self.day0_s + arrival * _SECONDS_PER_DAY + int(secs[pos]),
                "payment_date": self.dates[d].isoformat(),
                "arrival_date": (self.p.start + dt.timedelta(days=arrival)).isoformat(),
                "written": arrival < p.days,
                "pattern": patterns[k - n_legit] if fraud else "friendly_fraud",
            }
            self.chargeback_log.append(cb)
            if not fraud:
                self.friendly_ids.append(pay_ids[k])
            if cb["written"]:
                self.pending_chargebacks.setdefault(arrival, []).append(cb)

    def _chargebacks_today(self, d: int) -> pa.Table:
        cbs = sorted(self.pending_chargebacks.pop(d, []), key=lambda r: (r["ts"], r["chargeback_id"]))
        return pa.table(
            {
                C.CHARGEBACK_ID: _strings([r["chargeback_id"] for r in cbs]),
                C.PAYMENT_ID: _strings([r["payment_id"] for r in cbs]),
                C.REASON_CODE: _strings([r["reason_code"] for r in cbs]),
                C.AMOUNT: pa.array([r["amount"] for r in cbs], pa.float64()),
                C.CHARGEBACK_TS: _ts(np.array([r["ts"] for r in cbs], dtype=np.int64)),
            }
        )

    def _events_table(self, sess: dict, extra: dict) -> pa.Table:
        vs, n_views = sess["view_session"], len(sess["view_session"])
        su, snum = sess["session_user"], sess["session_num"]
        clicked, carted = sess["clicked"], sess["carted"]
        lines: _Lines = sess["lines"]
        bought_sessions = sess["order_session"][lines.order]
        n_search = sess["n_search"]
        user = np.concatenate([su[sess["search_session"]], su[vs], su[vs[clicked]], su[vs[carted]], su[bought_sessions], extra["user"]])
        session = np.concatenate(
            [snum[sess["search_session"]], snum[vs], snum[vs[clicked]], snum[vs[carted]], snum[bought_sessions], extra["session"]]
        )
        etype = np.concatenate(
            [
                np.full(n_search, _SEARCH),
                np.full(n_views, _VIEW),
                np.full(int(clicked.sum()), _CLICK),
                np.full(int(carted.sum()), _CART),
                np.full(len(lines.item), _PURCHASE),
                extra["type"],
            ]
        )
        item = np.concatenate(
            [np.full(n_search, -1), sess["view_item"], sess["view_item"][clicked], sess["view_item"][carted], lines.item, extra["item"]]
        ).astype(np.int64)
        ts = np.concatenate(
            [sess["search_ts"], sess["view_ts"], sess["click_ts"][clicked], sess["cart_ts"][carted], lines.ts, extra["ts"]]
        ).astype(np.int64)
        query = np.empty(len(ts), dtype=object)
        query[:n_search] = sess["queries"]
        order = np.lexsort((np.arange(len(ts)), ts))
        n = len(ts)
        return pa.table(
            {
                C.EVENT_ID: _ids("e", self._next("event", n), 10),
                C.USER_ID: _strings(self.user_ids[user[order]]),
                C.SESSION_ID: _ids("s", session[order], 9),
                C.EVENT_TYPE: _strings(_EVENT_TYPE_NAMES[etype[order]]),
                C.ITEM_ID: _strings(self.item_ids[item[order]]),
                C.QUERY: _strings(query[order]),
                C.EVENT_TS: _ts(ts[order]),
            }
        )

    def _ads(self, d: int, day_s: int, n_sessions: int) -> pa.Table:
        p, rng = self.p, _rng(self.p.seed, _S_ADS, d)
        n = int(rng.poisson(p.ad_impressions_per_session * n_sessions)) if len(self.ad_item) else 0
        user = np.minimum(np.searchsorted(self.act_cdf, rng.random(n) * self.act_cdf[-1], side="right"), p.users - 1)
        # Half the impressions are targeted at a category the viewer browses, half are run-of-site.
        targeted = rng.random(n) < 0.5
        tcat = _pick_cdf(np.cumsum(self.taste[user], axis=1), rng.random(n))
        pair = rng.integers(0, len(self.ad_item), n) if n else np.array([], np.int64)
        u = rng.random(n)
        for c in range(self.n_cat):
            rows = np.flatnonzero(targeted & (tcat == c))
            if len(rows) and len(self.ad_by_cat[c]):
                pair[rows] = self.ad_by_cat[c][(u[rows] * len(self.ad_by_cat[c])).astype(np.int64)]
        item, camp = self.ad_item[pair], self.ad_camp[pair]
        placement = rng.choice(len(PLACEMENTS), size=n, p=_PLACEMENT_P)
        match = self.fav_mask[user, self.cat[item]]
        base = np.array([_BASE_CTR[pl] for pl in PLACEMENTS])[placement]
        ctr = np.minimum(base * np.where(match, p.affinity_ctr_multiplier, 1.0), 1.0)
        clicked = rng.random(n) < ctr
        converted = clicked & (rng.random(n) < p.ad_conversion_rate)
        hour = rng.choice(len(_HOUR_WEIGHTS), size=n, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
        its = day_s + hour * 3600 + rng.integers(0, 3600, n)
        cts = np.minimum(its + rng.integers(1, 30, n), day_s + _SECONDS_PER_DAY - 1)
        vts = np.minimum(cts + rng.integers(60, 1800, n), day_s + _SECONDS_PER_DAY - 1)
        known = rng.random(n) < 0.9
        imp_num = self._next("impression", n)

        rows_imp = np.concatenate([np.arange(n), np.flatnonzero(clicked), np.flatnonzero(converted)])
        kind = np.concatenate([np.full(n, _IMPRESSION), np.full(int(clicked.sum()), _AD_CLICK), np.full(int(converted.sum()), _CONVERSION)])
        ts = np.concatenate([its, cts[clicked], vts[converted]])
        cost = np.where(kind == _AD_CLICK, self.camp_cpc[camp[rows_imp]], 0.0)
        order = np.lexsort((kind, rows_imp, ts))
        r = rows_imp[order]
        users = np.where(known[r], user[r], len(self.user_ids) - 1)
        return pa.table(
            {
                C.AD_EVENT_ID: _ids("ad", self._next("ad", len(r)), 10),
                C.IMPRESSION_ID: _ids("im", imp_num[r], 10),
                C.EVENT_TYPE: _strings(_AD_TYPE_NAMES[kind[order]]),
                C.USER_ID: _strings(self.user_ids[users]),
                C.ITEM_ID: _strings(self.item_ids[item[r]]),
                C.CAMPAIGN_ID: _strings(self.camp_ids[camp[r]]),
                C.PLACEMENT: _strings(np.array(PLACEMENTS, dtype=object)[placement[r]]),
                C.COST: pa.array(cost[order], pa.float64()),
                C.EVENT_TS: _ts(ts[order]),
            }
        )

    def _tickets(self, d: int, day_s: int, refs: dict) -> pa.Table:
        p, rng = self.p, _rng(self.p.seed, _S_SUPPORT, d)
        self.recent_orders.append(refs)
        pool_ids = np.concatenate([r["order_id"] for r in self.recent_orders])
        pool_user = np.concatenate([r["user"] for r in self.recent_orders])
        pool_item = np.concatenate([r["item"] for r in self.recent_orders])
        pool_amount = np.concatenate([r["amount"] for r in self.recent_orders])
        n = int(rng.poisson(p.tickets_per_order * len(refs["order_id"])))
        rows = []
        launched = np.flatnonzero(self.launched)
        for _ in range(n):
            intent = INTENTS[rng.choice(len(INTENTS), p=_INTENT_P)]
            order_id, amount = None, None
            if intent in _ORDER_INTENTS and len(pool_ids) and rng.random() < 0.9:
                k = int(rng.integers(len(pool_ids)))
                order_id, user, item, amount = pool_ids[k], int(pool_user[k]), int(pool_item[k]), pool_amount[k]
            else:
                user = int(np.minimum(np.searchsorted(self.act_cdf, rng.random() * self.act_cdf[-1], side="right"), p.users - 1))
                item = int(launched[rng.integers(len(launched))])
            templates = _TICKET_TEMPLATES[intent]
            body = templates[rng.integers(len(templates))].format(
                order=f"order {order_id}" if order_id else "my last order",
                item=self.noun[item],
                days=int(rng.integers(2, 15)),
                amount=f"{amount:.2f} {p.currency}" if amount is not None else "twice",
            )
            opener = _TICKET_OPENERS[rng.integers(len(_TICKET_OPENERS))]
            if opener:
                body = body[0].lower() + body[1:]
            text = opener + body + _TICKET_CLOSERS[rng.integers(len(_TICKET_CLOSERS))]
            labelled = rng.random() < p.intent_label_rate
            resolution = _RESOLUTIONS[intent][rng.integers(len(_RESOLUTIONS[intent]))] if labelled else None
            rows.append(
                (
                    self.user_ids[user],
                    order_id,
                    CHANNELS[rng.choice(3, p=[0.45, 0.4, 0.15])],
                    text,
                    intent if labelled else None,
                    resolution,
                    day_s + int(rng.integers(0, _SECONDS_PER_DAY)),
                )
            )
        rows.sort(key=lambda r: r[6])
        nums = self._next("ticket", len(rows))
        cols = list(zip(*rows)) if rows else [[]] * 7
        return pa.table(
            {
                C.TICKET_ID: _ids("t", nums, 8),
                C.USER_ID: _strings(cols[0]),
                C.ORDER_ID: _strings(cols[1]),
                C.CHANNEL: _strings(cols[2]),
                C.TEXT: _strings(cols[3]),
                C.INTENT: _strings(cols[4]),
                C.RESOLUTION: _strings(cols[5]),
                C.CREATED_TS: _ts(np.array(cols[6], dtype=np.int64)),
            }
        )

    def _close_stock(self, d: int, opening: np.ndarray, sess: dict, fraud: dict) -> pa.Table:
        p = self.p
        fl = np.array(fraud["lines"], dtype=np.int64).reshape(-1, 3)
        items = np.concatenate([sess["lines"].item, fl[:, 1]]).astype(np.int64)
        units = np.concatenate([sess["lines"].qty, fl[:, 2]]).astype(np.int64)
        sold = np.zeros(p.items, dtype=np.int64)
        np.add.at(sold, items, units)
        self.on_hand = opening - sold
        launched = self.launched
        # Demand, not sales, drives the forecast, or a stock-out would teach it that nobody wants the item.
        self.ewma = np.where(launched, 0.9 * self.ewma + 0.1 * self.attempted, self.ewma)
        rop = np.maximum(np.ceil(self.ewma * (self.lead + 4)), 2)
        reorder = np.flatnonzero(launched & (self.blocked_until < d) & (self.on_hand + self.on_order <= rop))
        qty = self._order_qty(reorder)
        self.arrivals[reorder, d + self.lead[reorder]] += qty
        self.on_order[reorder] += qty
        rows = np.flatnonzero(launched)
        return pa.table(
            {
                C.SNAPSHOT_DATE: pa.array([self.dates[d]] * len(rows), pa.date32()),
                C.ITEM_ID: _strings(self.item_ids[rows]),
                C.ON_HAND: pa.array(self.on_hand[rows], pa.int32()),
                C.ON_ORDER: pa.array(self.on_order[rows], pa.int32()),
                C.LEAD_TIME_DAYS: pa.array(self.lead[rows], pa.int32()),
                C.UNIT_COST: pa.array(self.unit_cost[rows], pa.float64()),
            }
        )

    def _with_order_changes(self, d: int, orders: pa.Table) -> pa.Table:
        """The day's placed lines plus cancellations and returns of earlier orders, in time order."""
        parts = [orders] + self.pending_orders.pop(d, [])
        if len(parts) == 1:
            return orders
        merged = pa.concat_tables(parts)
        order = pc.sort_indices(
            merged, sort_keys=[(C.ORDER_TS, "ascending"), (C.ORDER_ID, "ascending"), (C.LINE_NUMBER, "ascending"), (C.STATUS, "ascending")]
        )
        return merged.take(order)

    def _inject_bad_rows(self, d: int, tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
        rng = _rng(self.p.seed, _S_BAD, d)
        out = {}
        for source, table in tables.items():
            n = table.num_rows
            k = int(rng.binomial(n, self.p.bad_rows)) if n else 0
            if k == 0:
                out[source] = table
                continue
            modes = _BAD_MODES[source]
            records = table.to_pylist()
            bad = []
            for j, src in enumerate(np.sort(rng.choice(n, size=k, replace=True))):
                row = dict(records[src])
                fld, reason, how = modes[rng.integers(len(modes))]
                if how == "null_item" and row[C.EVENT_TYPE] == _EVENT_TYPE_NAMES[_SEARCH]:
                    row[C.EVENT_TYPE] = _EVENT_TYPE_NAMES[_VIEW]
                id_field = _ID_FIELDS.get(source)
                if id_field and row[id_field] is not None:
                    row[id_field] = f"{row[id_field]}x{j + 1}"
                if how == "negate":
                    row[fld] = -abs(row[fld] or 0) - 1
                elif how == "zero":
                    row[fld] = 0
                elif how == "unknown":
                    row[fld] = {C.STATUS: "shipped", C.EVENT_TYPE: "hover", C.PAYMENT_METHOD: "crypto"}[fld]
                elif how == "blank":
                    row[fld] = "   "
                elif how in ("null", "null_item"):
                    row[fld] = None
                bad.append(row)
                self.bad_log.append(
                    {
                        "source": source,
                        "date": self.dates[d].isoformat(),
                        "row": n + j,
                        "field": fld,
                        "reason": reason,
                        "id": row[id_field] if id_field else None,
                    }
                )
            out[source] = pa.concat_tables([table, pa.Table.from_pylist(bad, schema=table.schema)])
        return out

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
            "ads": {
                "ctr_by_placement": dict(_BASE_CTR),
                "affinity_ctr_multiplier": p.affinity_ctr_multiplier,
                "affinity": "the advertised item's category is one of the viewer's favourite_categories",
                "conversion_rate": p.ad_conversion_rate,
                "campaigns": [
                    {
                        "campaign_id": c["campaign_id"],
                        "category": c["category"],
                        "cpc": c["cpc"],
                        "items": [self.item_ids[i] for i in c["items"]],
                    }
                    for c in self.campaigns
                ],
            },
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
