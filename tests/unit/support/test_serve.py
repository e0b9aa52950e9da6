"""Support replies and categories from small TF-IDF bundles built here, without Serve or a registry."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shoplake import columns as C
from shoplake.categorize.features import product_text_str
from shoplake.categorize.serve import Categorizer, TitleIn
from shoplake.registry import ModelVersionInfo
from shoplake.support.answers import AnswerStore
from shoplake.support.serve import LOW_CONFIDENCE, NO_ANSWER, MessageIn, SupportReplier
from shoplake.text.bundle import CATEGORIZATION, SUPPORT, TextBundle
from shoplake.text.classifier import TfidfClassifier
from shoplake.text.serve import TextTooLong

HANDOFF_THRESHOLD = 0.7

MESSAGES = {
    "track_order": [
        "where is my order", "track my order please", "my parcel has not arrived yet", "when will my package arrive",
        "where is order 12345678", "can you tell me where my purchase is", "has my order shipped", "delivery status of my order",
    ],
    "cancel_order": [
        "cancel my order", "I want to cancel order 87654321", "please cancel the purchase", "how do I cancel an order",
        "stop my order I do not want it", "cancel purchase 11223344", "I need to cancel my order now", "cancellation of my order",
    ],
    "change_address": [
        "change my delivery address", "update the shipping address", "I moved, new address please", "wrong address on my order",
        "edit my address", "ship to a different address", "change address for delivery", "correct my street address",
    ],
}  # fmt: skip
#: Agent answers on record, by message; change_address has none.
RESOLUTIONS = {
    "where is order 12345678": "Order 12345678 is on its way and arrives within 3 days.",
    "I want to cancel order 87654321": "I've cancelled order 87654321. A confirmation e-mail follows.",
}

PRODUCTS = {
    "shoes": ["Trail running shoe", "Leather ankle boot", "Canvas sneaker low top", "Running shoe with foam sole",
              "Suede loafer", "Hiking boot waterproof", "Kids sneaker with velcro", "Walking shoe breathable mesh"],
    "kitchen": ["Stainless steel frying pan", "Chef knife 20 cm", "Ceramic mixing bowl", "Non-stick saucepan with lid",
                "Wooden cutting board", "Cast iron skillet", "Kitchen knife set", "Glass measuring jug"],
    "phones": ["Smartphone 128 GB black", "Phone case silicone", "USB-C phone charger", "Screen protector for smartphone",
               "Wireless earbuds for phone", "Smartphone 256 GB blue", "Phone car mount", "Fast charging cable for phone"],
}  # fmt: skip


def support_bundle(threshold: float = HANDOFF_THRESHOLD) -> TextBundle:
    texts = [t for ts in MESSAGES.values() for t in ts]
    intents = [intent for intent, ts in MESSAGES.items() for _ in ts]
    classifier = TfidfClassifier.train(texts, intents, sorted(MESSAGES))
    rows = [{C.TICKET_ID: f"t{n}", C.TEXT: text, C.INTENT: intent, C.RESOLUTION: RESOLUTIONS.get(text), C.ORDER_ID: None}
            for n, (text, intent) in enumerate(zip(texts, intents))]  # fmt: skip
    answers = AnswerStore.build(rows, classifier.embed(texts))
    return TextBundle(SUPPORT, classifier, threshold, answers, {"model_name": classifier.kind})


def category_bundle(threshold: float = 0.6) -> TextBundle:
    texts = [t for ts in PRODUCTS.values() for t in ts]
    categories = [c for c, ts in PRODUCTS.items() for _ in ts]
    return TextBundle(CATEGORIZATION, TfidfClassifier.train(texts, categories, sorted(PRODUCTS)), threshold, None, {})


def loaded(model_class, cfg, bundle: TextBundle):
    """``model_class`` over a lake without a registry, then given ``bundle`` as version 7."""
    model = model_class(cfg, check_every_s=3600)
    model.bundle = bundle
    model.info = ModelVersionInfo(name=model.registered_model, version="7", run_id="run", kind=bundle.kind)
    return model


@pytest.fixture(scope="module")
def bundles() -> dict[str, TextBundle]:
    return {SUPPORT: support_bundle(), CATEGORIZATION: category_bundle()}


@pytest.fixture
def replier(make_cfg, bundles) -> SupportReplier:
    return loaded(SupportReplier, make_cfg("support.max_message_chars=80"), bundles[SUPPORT])


@pytest.fixture
def categorizer(make_cfg, bundles) -> Categorizer:
    return loaded(Categorizer, make_cfg("categorization.max_text_chars=60"), bundles[CATEGORIZATION])


def test_answer_names_the_order_of_the_message(replier):
    body = replier.reply(MessageIn(message="  Where is\tmy order 55556666?  "))
    assert (body["intent"], body["handoff"], body["reason"], body["detail"]) == ("track_order", False, None, None)
    assert body["confidence"] >= HANDOFF_THRESHOLD
    assert body["answer"] == "Order 55556666 is on its way and arrives within 3 days."
    assert body["entities"] == {"order_id": "55556666"}
    assert (body["model_name"], body["model_version"]) == ("tfidf_lr", "7")
    alternatives = body["alternatives"]
    assert [a["intent"] for a in alternatives][0] == "track_order" and len(alternatives) == 3
    assert alternatives[0]["probability"] == pytest.approx(body["confidence"])
    assert [a["probability"] for a in alternatives] == sorted((a["probability"] for a in alternatives), reverse=True)


def test_order_id_of_the_body_fills_the_answer_when_the_text_names_none(replier):
    body = replier.reply(MessageIn(message="please cancel the purchase", order_id="o00012345", user_id="u1"))
    assert body["intent"] == "cancel_order" and not body["handoff"]
    assert body["answer"] == "I've cancelled order o00012345. A confirmation e-mail follows."
    assert body["entities"] == {"order_id": "o00012345"}

    # The order the message names wins over the body's.
    body = replier.reply(MessageIn(message="cancel purchase 99990000 please", order_id="o00012345"))
    assert body["entities"] == {"order_id": "99990000"} and "order 99990000" in body["answer"]


def test_without_an_order_number_the_answer_says_your_order(replier):
    body = replier.reply(MessageIn(message="when will my package arrive"))
    assert body["answer"] == "Your order is on its way and arrives within 3 days." and body["entities"] == {}


def test_low_confidence_hands_off_with_the_threshold(replier):
    body = replier.reply(MessageIn(message="I like turtles and jazz"))
    assert body["handoff"] is True and body["answer"] is None and body["reason"] == LOW_CONFIDENCE
    assert body["confidence"] < HANDOFF_THRESHOLD
    assert f"{body['confidence']:.3f}" in body["detail"] and f"{HANDOFF_THRESHOLD:.3f}" in body["detail"]
    assert len(body["alternatives"]) == 3


def test_an_intent_without_an_answer_on_record_hands_off(replier):
    body = replier.reply(MessageIn(message="I need to change the delivery address"))
    assert body["intent"] == "change_address" and body["confidence"] >= HANDOFF_THRESHOLD
    assert (body["handoff"], body["answer"], body["reason"]) == (True, None, NO_ANSWER)
    assert "change_address" in body["detail"]


def test_message_body_is_checked(replier):
    for bad in ({"message": ""}, {"message": " \n\t"}, {"message": 12}, {}, {"message": "hi", "channel": "chat"},
                {"message": "hi", "order_id": ""}):  # fmt: skip
        with pytest.raises(ValidationError):
            MessageIn.model_validate(bad)
    with pytest.raises(TextTooLong, match=r"field message: at most 80 characters are allowed \(got 81\)"):
        replier.reply(MessageIn(message="x" * 81))


def test_categorizer_names_the_category_and_alternatives(categorizer):
    body = categorizer.categorize(TitleIn(title="Waterproof trail running shoe", description="Trail running shoe"))
    assert body["category"] == "shoes" and (body["model_name"], body["model_version"]) == ("tfidf_lr", "7")
    assert [a["category"] for a in body["alternatives"]][0] == "shoes"
    assert sorted(a["category"] for a in body["alternatives"]) == sorted(PRODUCTS)
    assert body["alternatives"][0]["probability"] == pytest.approx(body["confidence"])
    assert sum(a["probability"] for a in body["alternatives"]) == pytest.approx(1.0, abs=1e-5)


def test_categorizer_reads_the_text_gold_product_text_holds(categorizer, monkeypatch):
    seen: list[str] = []
    predict = categorizer.bundle.predict
    monkeypatch.setattr(categorizer.bundle, "predict", lambda texts: seen.extend(texts) or predict(texts))
    categorizer.categorize(TitleIn(title=" Chef  knife ", description="Chef knife"))
    categorizer.categorize(TitleIn(title="Chef knife", description="Forged\u00a0steel,\n20 cm"))
    categorizer.categorize(TitleIn(title="Chef knife", description="   "))
    assert seen == ["Chef knife", "Chef knife. Forged steel, 20 cm", "Chef knife"]
    assert seen == [product_text_str(" Chef  knife ", "Chef knife"), product_text_str("Chef knife", "Forged\u00a0steel,\n20 cm"),
                    product_text_str("Chef knife")]  # fmt: skip


def test_title_body_is_checked(categorizer):
    for bad in ({"title": ""}, {"title": "  "}, {"title": 3}, {"description": "x"}, {"title": "x", "colour": "red"},
                {"title": "x", "description": 4}):  # fmt: skip
        with pytest.raises(ValidationError):
            TitleIn.model_validate(bad)
    with pytest.raises(TextTooLong, match="field title: at most 60 characters"):
        categorizer.categorize(TitleIn(title="y" * 61))
    with pytest.raises(TextTooLong, match="field description: at most 60 characters"):
        categorizer.categorize(TitleIn(title="pan", description="y" * 61))


def test_without_a_registered_model_status_says_why_and_calls_fail(make_cfg):
    cfg = make_cfg()
    replier, categorizer = SupportReplier(cfg, check_every_s=0), Categorizer(cfg, check_every_s=0)
    for model in (replier, categorizer):
        status = model.status()
        assert status["loaded"] is False and "no model registry" in status["detail"]
    with pytest.raises(RuntimeError, match="no support model"):
        replier.reply(MessageIn(message="where is my order"))
    with pytest.raises(RuntimeError, match="no categorization model"):
        categorizer.categorize(TitleIn(title="pan"))
