from __future__ import annotations

import numpy as np
import pytest

from shoplake.support.answers import ENTITY_TYPES, AnswerStore, answer_template, extract_entities, fill_template, template_fields

CANCELLED = "I've cancelled order 732201349959. You'll get a confirmation email within 5 business days."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("how can I cancel purchase 113542617735902?", {"order_id": "113542617735902"}),
        ("can you help me canceling purchase 00004587345?", {"order_id": "00004587345"}),
        ("my order number: 00004587345.", {"order_id": "00004587345"}),
        ("Where is order #A-1234?", {"order_id": "A-1234"}),
        ("Hi, my card was charged twice for order o00012345. Thanks.", {"order_id": "o00012345"}),
        ("Hello, is O00012345 on its way?", {"order_id": "O00012345"}),
        ("the confirmation says 732201349959, where is it", {"order_id": "732201349959"}),
        ("I was charged 84.99 EUR but order o00012345 shows as unpaid.", {"order_id": "o00012345", "amount": "84.99 EUR"}),
        ("order #123456 arrived broken", {"order_id": "123456"}),
        ("cancelling order732201349959", {"order_id": "732201349959"}),
        ("I am waiting for a compensation of350 dollars", {"amount": "350 dollars"}),
        ("I ordered 3 items and the parcels are late", {}),
        ("want assistance to look for the bill #85632", {"invoice_id": "#85632"}),
        ("i lost invoice#12588 mail it to me", {"invoice_id": "#12588"}),
        ("please resend invoice number 2024-0042", {"invoice_id": "2024-0042"}),
        ("reimburse $299", {"amount": "$299"}),
        ("rebating 1499 dollars", {"amount": "1499 dollars"}),
        ("refund 12.50 GBP to ana.b+shop@example.co.uk.", {"amount": "12.50 GBP", "email": "ana.b+shop@example.co.uk"}),
        ("write to o00012345@shop.example please", {"email": "o00012345@shop.example"}),
        ("I have 2 items", {}),
        ("my code is 12345", {}),
        ("I want to purchase 3 items, my order has not shipped", {}),
    ],
)
def test_extract_entities(text: str, expected: dict[str, str]) -> None:
    assert extract_entities(text) == expected


def test_entities_come_in_entity_types_order() -> None:
    found = extract_entities("me@x.org paid $20.00 for invoice 55555 and order 12345678")
    assert list(found) == list(ENTITY_TYPES)
    assert found == {"order_id": "12345678", "invoice_id": "55555", "amount": "$20.00", "email": "me@x.org"}


def test_order_template_fills_with_value_or_generic_phrase() -> None:
    template = answer_template(CANCELLED, {"order_id": "732201349959"})
    assert template == "I've cancelled {order_id}. You'll get a confirmation email within 5 business days."
    assert template_fields(template) == frozenset({"order_id"})
    assert fill_template(template, extract_entities("cancel order 555555555555 now")) == (
        "I've cancelled order 555555555555. You'll get a confirmation email within 5 business days."
    )
    assert fill_template(template, {}) == ("I've cancelled your order. You'll get a confirmation email within 5 business days.")


def test_noun_wording_is_absorbed_and_leading_placeholder_capitalised() -> None:
    template = answer_template("Your order no. o00012345 has shipped; ref o00012345.", {"order_id": "o00012345"})
    assert template == "{order_id} has shipped; ref {order_id}."
    assert fill_template(template, {}) == "Your order has shipped; ref your order."
    assert fill_template(template, {"order_id": "o00099999"}) == "Order o00099999 has shipped; ref order o00099999."


def test_invoice_and_amount_templates() -> None:
    entities = {"invoice_id": "#85632", "amount": "$160"}
    template = answer_template("I've emailed invoice #85632; your refund of 160 is on its way.", entities)
    assert template == "I've emailed {invoice_id}; your refund of {amount} is on its way."
    assert fill_template(template, {"invoice_id": "#12588", "amount": "12.50 GBP"}) == (
        "I've emailed invoice #12588; your refund of 12.50 GBP is on its way."
    )
    generic = fill_template(template, {"amount": ""})
    assert generic == "I've emailed your invoice; your refund of the amount is on its way."


def test_template_keeps_braces_short_values_and_longer_numbers() -> None:
    resolution = "Use code {SAVE10} on item 12; call 1234567890 about order 12345678."
    template = answer_template(resolution, {"order_id": "12345678", "amount": "12", "invoice_id": ""})
    assert template == "Use code {{SAVE10}} on item 12; call 1234567890 about {order_id}."
    assert template_fields(template) == frozenset({"order_id"})
    assert fill_template(template, {"order_id": "o00000001"}) == ("Use code {SAVE10} on item 12; call 1234567890 about order o00000001.")


E = np.eye(4, dtype=np.float32)
ROWS = [
    {"ticket_id": "t1", "text": "cancel order 732201349959", "intent": "cancel_order", "resolution": CANCELLED, "order_id": "732201349959"},
    {
        "ticket_id": "t2",
        "text": "cancel my order",
        "intent": "cancel_order",
        "resolution": "Order cancelled before shipping; full refund issued.",
        "order_id": None,
    },
    {
        "ticket_id": "t3",
        "text": "where is my last order",
        "intent": "track_order",
        "resolution": "Your parcel {tracked} for o00099999 arrives tomorrow.",
        "order_id": "o00099999",
    },
    {"ticket_id": "t4", "text": "where is it", "intent": "track_order", "resolution": None, "order_id": None},
    {
        "ticket_id": "t5",
        "text": "send me invoice #85632",
        "intent": "get_invoice",
        "resolution": "I've emailed invoice #85632 as a PDF.",
        "order_id": None,
    },
]
EMBEDDINGS = np.stack([E[0], E[1], E[3], E[0], E[2]])


@pytest.fixture
def store() -> AnswerStore:
    return AnswerStore.build(ROWS, EMBEDDINGS)


def test_build_drops_unanswered_rows_and_uses_order_column(store: AnswerStore) -> None:
    assert len(store) == 4
    assert store.ticket_ids == ["t1", "t2", "t3", "t5"]
    assert store.intents == ["cancel_order", "get_invoice", "track_order"]
    assert store.templates[2] == "Your parcel {{tracked}} for {order_id} arrives tomorrow."


def test_answer_picks_most_similar_satisfiable_row(store: AnswerStore) -> None:
    new_order = {"order_id": "555555555555"}
    best = store.answer("cancel_order", E[0], new_order)
    assert (best.ticket_id, best.similarity, best.filled, best.missing) == ("t1", 1.0, new_order, [])
    assert best.text == "I've cancelled order 555555555555. You'll get a confirmation email within 5 business days."
    closer_to_t2 = np.array([0.6, 0.8, 0.0, 0.0], dtype=np.float32)
    assert store.answer("cancel_order", closer_to_t2, new_order).ticket_id == "t2"
    # t1 is more similar but needs an order number the message lacks.
    fallback = store.answer("cancel_order", E[0], {})
    assert (fallback.ticket_id, fallback.similarity, fallback.missing) == ("t2", 0.0, [])
    assert fallback.text == "Order cancelled before shipping; full refund issued."


def test_answer_never_leaves_the_intent(store: AnswerStore) -> None:
    answer = store.answer("track_order", E[0], {"order_id": "o00012345"})
    assert (answer.ticket_id, answer.similarity) == ("t3", 0.0)
    assert answer.text == "Your parcel {tracked} for order o00012345 arrives tomorrow."
    assert store.answer("return_item", E[0], {}) is None


def test_unsatisfiable_intent_falls_back_to_generic_phrase(store: AnswerStore) -> None:
    answer = store.answer("get_invoice", E[2], {"order_id": "o00012345"})
    assert (answer.ticket_id, answer.filled, answer.missing) == ("t5", {}, ["invoice_id"])
    assert answer.text == "I've emailed your invoice as a PDF."


def test_save_load_round_trip(store: AnswerStore, tmp_path) -> None:
    folder = store.save(tmp_path / "answers")
    assert sorted(p.name for p in folder.iterdir()) == ["answer_embeddings.npy", "answers.parquet"]
    loaded = AnswerStore.load(folder)
    assert loaded.templates == store.templates and loaded.fields == store.fields
    assert loaded.embeddings.dtype == np.float32 and np.array_equal(loaded.embeddings, store.embeddings)
    queries = [
        ("cancel_order", E[0], {}),
        ("cancel_order", E[0], {"order_id": "o00012345"}),
        ("track_order", E[3], {}),
        ("get_invoice", E[2], {"invoice_id": "#1234"}),
    ]
    for intent, query, entities in queries:
        assert loaded.answer(intent, query, entities) == store.answer(intent, query, entities)


def test_build_rejects_mismatched_embedding_rows() -> None:
    with pytest.raises(ValueError, match=r"embeddings have 3 rows but there are 5 rows"):
        AnswerStore.build(ROWS, EMBEDDINGS[:3])


def test_answer_rejects_query_of_wrong_dimension(store: AnswerStore) -> None:
    with pytest.raises(ValueError, match=r"dimension 3, the store's embeddings have 4"):
        store.answer("cancel_order", np.ones(3, dtype=np.float32), {})
