"""Sentence embeddings of item text with the packaged all-MiniLM-L6-v2 (offline)."""

from __future__ import annotations

import numpy as np
import pytest

from shoplake.config import TextEncoderConfig
from shoplake.text import encoder as text_encoder
from shoplake.text.encoder import encode_texts

CFG = TextEncoderConfig(batch_size=2, max_length=32)


@pytest.fixture(scope="module", autouse=True)
def offline(monkeypatch_module):
    monkeypatch_module.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch_module.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_embeddings_are_unit_vectors_of_the_model_width():
    emb = encode_texts(["Red Wooden Toy Train", "Ceramic Tea Cup", "Christmas Tree Lights"], CFG)
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_similar_texts_are_closer_than_unrelated_ones():
    emb = encode_texts(["Red Spotty Ceramic Tea Cup", "Blue Ceramic Coffee Mug", "Set Of 6 Christmas Tree Lights"], CFG)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.1


def test_empty_texts_get_zeros_without_shifting_the_others(monkeypatch):
    texts = ["Ceramic Tea Cup", "", None, "   ", "Christmas Tree Lights"]
    emb = encode_texts(texts, CFG)
    assert not emb[1:4].any()
    np.testing.assert_allclose(emb[[0, 4]], encode_texts([texts[0], texts[4]], CFG), atol=1e-5)
    # Only real texts reach the tokenizer.
    tokenizer, model = text_encoder.load_encoder(None)
    seen: list[str] = []

    def spy(batch, **kwargs):
        seen.extend(batch)
        return tokenizer(batch, **kwargs)

    monkeypatch.setitem(text_encoder._CACHE, text_encoder.default_model_path(), (spy, model))
    assert not encode_texts(["", None], CFG).any() and seen == []
    encode_texts(texts, CFG)
    assert seen == ["Ceramic Tea Cup", "Christmas Tree Lights"]


def test_batching_and_padding_do_not_change_an_embedding():
    long = "Large Hand Painted Enamel Heart Shaped Christmas Tree Decoration With Ribbon"
    alone = encode_texts([long], CFG)
    batched = encode_texts(["Cup", long, "Set Of 3 Cake Tins Pantry Design"], TextEncoderConfig(batch_size=3, max_length=32))
    np.testing.assert_allclose(alone[0], batched[1], atol=1e-5)


def test_the_model_is_loaded_once_per_path():
    first = text_encoder.load_encoder(None)
    assert text_encoder.load_encoder(text_encoder.default_model_path()) is first
