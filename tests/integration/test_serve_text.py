"""``POST /support/reply``, ``POST /categorize`` and batch categories, with small TF-IDF models in a lake's registry.

One lake per module: a support and a categorization bundle registered in its MLflow,
two run dates of ``gold.product_text``, and one Serve application over it.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pyarrow as pa
import pytest

from helpers import TEST_OVERRIDES, get_json, post_json
from shoplake import columns as C
from shoplake.categorize.features import product_text_str
from shoplake.categorize.schemas import PRODUCT_CATEGORIES, PRODUCT_TEXT

OLD, LATEST = dt.date(2024, 3, 30), dt.date(2024, 3, 31)
MAX_MESSAGE, MAX_TEXT = 200, 100
DISAGREEMENT = 0.6
SETTINGS = (f"support.max_message_chars={MAX_MESSAGE}", f"categorization.max_text_chars={MAX_TEXT}")

INTENTS = {
    "track_order": ["where is my order", "track my order please", "my parcel has not arrived yet", "when does my package arrive",
                    "where is order 12345678", "has my order shipped yet"],
    "cancel_order": ["cancel my order", "I want to cancel order 87654321", "please cancel the purchase",
                     "how do I cancel an order", "stop my order, I do not want it", "cancel purchase 11223344"],
    "payment_issue": ["my card was declined", "payment failed at checkout", "I was charged twice", "the payment did not go through",
                      "why was my card refused", "double charge on my card"],
}  # fmt: skip
ANSWERS = {"where is order 12345678": "Order 12345678 was shipped and arrives within 3 days."}

CATEGORIES = {
    "shoes": ["Trail running shoe", "Leather ankle boot", "Canvas sneaker", "Running shoe with foam sole", "Suede loafer",
              "Hiking boot", "Kids sneaker", "Walking shoe mesh"],
    "kitchen": ["Stainless steel frying pan", "Chef knife", "Ceramic mixing bowl", "Non-stick saucepan", "Wooden cutting board",
                "Cast iron skillet", "Kitchen knife set", "Glass measuring jug"],
}  # fmt: skip
#: The catalogue categorized: (item, title, description, given category). shoe-9 is filed under kitchen.
CATALOGUE = [
    ("shoe-1", "Trail running shoe", "Grippy trail running shoe", "shoes"),
    ("shoe-2", "Leather ankle boot", "Leather ankle boot", "shoes"),
    ("shoe-9", "Running shoe with foam sole", "Light running shoe, foam sole", "kitchen"),
    ("pan-1", "Cast iron skillet", None, "kitchen"),
    ("pan-2", "Non-stick saucepan", "Non-stick saucepan with glass lid", None),
]


def register_bundles(cfg, folder) -> None:
    """Train, save and register the support and categorization bundles."""
    from shoplake.registry import log_model
    from shoplake.support.answers import AnswerStore
    from shoplake.text.bundle import CATEGORIZATION, SUPPORT, TextBundle
    from shoplake.text.classifier import TfidfClassifier

    texts = [t for ts in INTENTS.values() for t in ts]
    intents = [i for i, ts in INTENTS.items() for _ in ts]
    support = TfidfClassifier.train(texts, intents, sorted(INTENTS))
    rows = [{C.TICKET_ID: f"t{n}", C.TEXT: t, C.INTENT: i, C.RESOLUTION: ANSWERS.get(t)} for n, (t, i) in enumerate(zip(texts, intents))]
    bundles = {
        cfg.support.registered_model: TextBundle(SUPPORT, support, 0.6, AnswerStore.build(rows, support.embed(texts))),
        cfg.categorization.registered_model: TextBundle(
            CATEGORIZATION,
            TfidfClassifier.train(
                [t for ts in CATEGORIES.values() for t in ts], [c for c, ts in CATEGORIES.items() for _ in ts], sorted(CATEGORIES)
            ),
            DISAGREEMENT,
        ),
    }
    for name, bundle in bundles.items():
        log_model(cfg, bundle.save(folder / name), model_name=bundle.kind, params={}, metrics={}, table_versions={},
                  run_date=LATEST, registered_model=name)  # fmt: skip


def product_text_rows(run_date: dt.date) -> pa.Table:
    rows = [
        {C.ITEM_ID: item, C.TITLE: title, C.DESCRIPTION: description, C.BRAND: None, C.CATEGORY: category,
         C.TEXT: product_text_str(title, description), C.SPLIT: "train", C.RUN_DATE: run_date}
        for item, title, description, category in CATALOGUE
    ]  # fmt: skip
    return pa.Table.from_pylist(rows, schema=PRODUCT_TEXT.arrow_schema())


@pytest.fixture(scope="module")
def text_lake(tmp_path_factory, ray_local):
    """``(cfg, lake)``: registered text models and ``gold.product_text`` of two run dates."""
    from shoplake.config import load_config
    from shoplake.lake import Lake

    root = tmp_path_factory.mktemp("serve-text")
    cfg = load_config("local", [*TEST_OVERRIDES, f"lake.root={root}/lake", f"runs_dir={root}/runs", "lake.engine=delta-rs", *SETTINGS])
    register_bundles(cfg, root / "bundles")
    lake = Lake(cfg)
    lake.ray_write(ray_local.data.from_arrow(pa.concat_tables([product_text_rows(OLD), product_text_rows(LATEST)])), PRODUCT_TEXT)
    return cfg, lake


@pytest.fixture(scope="module")
def served(serve_url, text_lake):
    from ray import serve

    from shoplake.serve.app import build_app

    cfg, _ = text_lake
    serve.run(build_app({"env": "local", "overrides": [f"lake.root={cfg.lake.root}", *SETTINGS]}), name="text", route_prefix="/")
    yield serve_url
    serve.delete("text")


def test_reply_fills_in_the_order_number(served):
    status, body = post_json(f"{served}/support/reply", {"message": "Where is my order 55556666?", "user_id": "u1"})
    assert status == 200, body
    assert (body["intent"], body["handoff"], body["reason"]) == ("track_order", False, None)
    assert body["answer"] == "Order 55556666 was shipped and arrives within 3 days."
    assert body["entities"] == {"order_id": "55556666"}
    assert (body["model_name"], body["model_version"]) == ("tfidf_lr", "1")
    assert [a["intent"] for a in body["alternatives"]][0] == "track_order" and len(body["alternatives"]) == 3

    status, body = post_json(f"{served}/support/reply", {"message": "my parcel has not arrived", "order_id": "o00012345"})
    assert status == 200 and body["answer"] == "Order o00012345 was shipped and arrives within 3 days."


def test_out_of_scope_message_goes_to_a_person(served):
    status, body = post_json(f"{served}/support/reply", {"message": "Do you like turtles?"})
    assert status == 200, body
    assert (body["handoff"], body["answer"], body["reason"]) == (True, None, "low_confidence")
    assert "0.600" in body["detail"] and body["confidence"] < 0.6

    status, body = post_json(f"{served}/support/reply", {"message": "payment failed, my card was declined"})
    assert status == 200 and (body["intent"], body["reason"]) == ("payment_issue", "no_answer") and body["handoff"]


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/support/reply", {"message": ""}, 422, ["field message", "whitespace"]),
        ("/support/reply", {"message": "  \n\t "}, 422, ["field message", "whitespace"]),
        (
            "/support/reply",
            {"message": "x" * (MAX_MESSAGE + 1)},
            422,
            ["field message", f"at most {MAX_MESSAGE}", f"got {MAX_MESSAGE + 1}"],
        ),
        ("/support/reply", {"message": 42}, 422, ["field message", "valid string"]),
        ("/support/reply", {"order_id": "o1"}, 422, ["field message is required"]),
        ("/support/reply", {"message": "hi", "channel": "chat"}, 422, ["field channel is not a known field"]),
        ("/support/reply?lang=en", {"message": "where is my order"}, 400, ["unknown query parameter", "lang"]),
        ("/categorize", {"title": ""}, 422, ["field title"]),
        ("/categorize", {"title": 7}, 422, ["field title", "valid string"]),
        ("/categorize", {"title": "pan", "description": "y" * (MAX_TEXT + 1)}, 422, ["field description", f"at most {MAX_TEXT}"]),
        ("/categorize", {"title": "pan", "colour": "red"}, 422, ["field colour is not a known field"]),
        ("/categorize?k=2", {"title": "pan"}, 400, ["unknown query parameter", "k"]),
    ],
)
def test_bad_requests_are_refused_naming_the_field(served, path, body, status, words):
    got, answer = post_json(served + path, body)
    assert got == status, answer
    for word in words:
        assert word in answer["detail"]


def test_categorize(served):
    status, body = post_json(f"{served}/categorize", {"title": "Waterproof hiking boot", "description": "Leather boot"})
    assert status == 200, body
    assert body["category"] == "shoes" and (body["model_name"], body["model_version"]) == ("tfidf_lr", "1")
    assert [a["category"] for a in body["alternatives"]] == ["shoes", "kitchen"]
    assert body["alternatives"][0]["probability"] == pytest.approx(body["confidence"])


def test_health_names_both_models(served, text_lake):
    cfg, _ = text_lake
    status, body = get_json(f"{served}/health")
    assert status == 200
    assert {k: body["support"][k] for k in ("loaded", "name", "version", "kind", "threshold")} == {
        "loaded": True, "name": cfg.support.registered_model, "version": "1", "kind": "tfidf_lr", "threshold": 0.6,
    }  # fmt: skip
    assert {k: body["categorization"][k] for k in ("loaded", "name", "version", "threshold")} == {
        "loaded": True, "name": cfg.categorization.registered_model, "version": "1", "threshold": DISAGREEMENT,
    }  # fmt: skip


def test_score_categories_writes_one_row_per_product_and_flags_the_wrong_category(text_lake):
    from shoplake.categorize.score import score_categories

    cfg, lake = text_lake
    first = score_categories(cfg, lake)
    assert (first.run_date, first.rows, first.model_version, first.model_name) == (LATEST, len(CATALOGUE), "1", "tfidf_lr")
    rows = lake.to_arrow(PRODUCT_CATEGORIES)
    assert rows.schema == PRODUCT_CATEGORIES.arrow_schema()
    by_item = {r[C.ITEM_ID]: r for r in rows.to_pylist()}
    assert set(by_item) == {item for item, *_ in CATALOGUE} and rows.num_rows == len(CATALOGUE)
    assert {item for item, r in by_item.items() if r[C.DISAGREES]} == {"shoe-9"} and first.flagged == 1
    flagged = by_item["shoe-9"]
    assert (flagged[C.GIVEN_CATEGORY], flagged[C.PREDICTED_CATEGORY], flagged[C.SECOND_CATEGORY]) == ("kitchen", "shoes", "kitchen")
    assert flagged[C.CONFIDENCE] >= DISAGREEMENT and flagged[C.CONFIDENCE] + flagged[C.SECOND_CONFIDENCE] == pytest.approx(1.0, abs=1e-5)
    assert by_item["pan-2"][C.GIVEN_CATEGORY] is None and by_item["pan-2"][C.PREDICTED_CATEGORY] == "kitchen"
    assert all((r[C.TITLE], r[C.RUN_DATE], r[C.MODEL_VERSION]) == (t, LATEST, "1") for (i, t, *_) in CATALOGUE for r in [by_item[i]])

    # Another run date, then the latest again: each run replaces its own run date only.
    score_categories(cfg, lake, OLD.isoformat())
    again = score_categories(cfg, lake, LATEST)
    assert again.version == first.version + 2
    rows = lake.to_arrow(PRODUCT_CATEGORIES)
    keys = Counter((r[C.ITEM_ID], r[C.RUN_DATE]) for r in rows.select([C.ITEM_ID, C.RUN_DATE]).to_pylist())
    assert rows.num_rows == 2 * len(CATALOGUE) and set(keys.values()) == {1}
    assert lake.run_dates(PRODUCT_CATEGORIES) == [OLD, LATEST]


def test_score_categories_names_the_missing_table(text_lake, make_cfg):
    from shoplake.categorize.score import score_categories
    from shoplake.lake import Lake

    cfg, lake = text_lake
    with pytest.raises(LookupError, match="gold.product_text has no run date 2024-01-01"):
        score_categories(cfg, lake, dt.date(2024, 1, 1))
    with pytest.raises(LookupError, match="gold.product_text does not exist"):
        score_categories(cfg, Lake(make_cfg()))
