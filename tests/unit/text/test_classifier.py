"""Tokens, batches and the classifiers' shared behaviour, on tiny data (no Ray)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shoplake.config import TextEncoderConfig
from shoplake.text.bundle import SUPPORT, TextBundle, load_classifier
from shoplake.text.classifier import FrozenEncoderClassifier, TfidfClassifier, label_index
from shoplake.text.encoder import default_model_path, load_encoder
from shoplake.text.fine_tune import (
    EncoderClassifier,
    FineTunedClassifier,
    FineTuneSettings,
    FineTuneTask,
    Tokens,
    _load_transformer,
    epoch_batches,
    tokenize,
    trim_batch,
)
from shoplake.train.loop import warmup_linear

TEXTS = ["where is my parcel", "cancel my order please", "track order 12345", "I want to cancel it", "hi"]
LABELS = ["track", "cancel", "track", "cancel", "track"]


@pytest.fixture(scope="module")
def tokenizer():
    return load_encoder(None)[0]


def test_tokens_are_padded_to_max_length_and_cut_there(tokenizer):
    tokens = tokenize(tokenizer, ["hi", "one two three four five six seven eight nine ten eleven twelve"], 8)
    assert tokens.input_ids.shape == (2, 8) and tokens.input_ids.dtype == np.int32
    # [CLS] hi [SEP] and padding; the long text fills all 8 positions, [SEP] last.
    assert tokens.lengths.tolist() == [3, 8]
    assert tokens.input_ids[0, 3:].tolist() == [tokenizer.pad_token_id] * 5
    assert tokens.input_ids[1, -1] == tokenizer.sep_token_id


@pytest.mark.parametrize("bad, words", [("  ", "text 1 is blank"), (None, "text 1 is NoneType"), (3, "text 1 is int")])
def test_a_text_that_is_not_text_is_refused_by_position(tokenizer, bad, words):
    with pytest.raises(ValueError, match=words):
        tokenize(tokenizer, ["fine", bad], 8)


def test_a_batch_is_cut_to_its_longest_text():
    tokens = Tokens(np.array([[101, 7, 102, 0, 0], [101, 7, 8, 102, 0]], np.int32), np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], np.int8))
    ids, mask = trim_batch(tokens)
    assert ids.shape == (2, 4) and ids.dtype == torch.int64
    assert mask.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]


def test_every_rank_gets_as_many_batches_and_no_row_twice():
    ranks = [epoch_batches(11, 2, epoch=3, rank=r, world_size=2, seed=7) for r in range(2)]
    assert [len(b) for b in ranks] == [3, 3]  # 5 rows each (the 11th is dropped), batches of 2, 2, 1
    rows = np.concatenate([np.concatenate(b) for b in ranks])
    assert len(rows) == 10 and len(set(rows.tolist())) == 10
    # The same epoch gives the same batches; the next epoch another order.
    again = epoch_batches(11, 2, epoch=3, rank=0, world_size=2, seed=7)
    assert all((a == b).all() for a, b in zip(ranks[0], again, strict=True))
    assert not all((a == b).all() for a, b in zip(ranks[0], epoch_batches(11, 2, 4, 0, 2, 7), strict=True))


def test_the_task_yields_trimmed_batches_with_targets(tokenizer):
    settings = FineTuneSettings(("cancel", "track"), 16)
    task = FineTuneTask(settings, default_model_path(), tokenize(tokenizer, TEXTS, 16), label_index(settings.labels, LABELS), 2, seed=1)
    batches = list(task.batches(0, 0, 1))
    assert task.steps_per_epoch(1) == len(batches) == 3
    ids, mask, targets = batches[0]
    assert ids.shape[1] == int(mask.sum(1).max()) <= 16
    assert sorted(int(t) for b in batches for t in b[2]) == sorted(label_index(settings.labels, LABELS).tolist())


def test_labels_not_known_are_named():
    with pytest.raises(ValueError, match=r"\['refund'\]"):
        label_index(("cancel", "track"), ["track", "refund"])


def test_warm_up_rises_to_the_peak_then_falls_to_zero():
    factor = warmup_linear(10, 0.2)
    assert [round(factor(s), 3) for s in range(10)] == [0.5, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125]


def test_the_head_reads_mean_pooled_states_and_ignores_padding():
    encoder = _load_transformer(default_model_path())
    assert getattr(encoder, "pooler", None) is None
    model = EncoderClassifier(encoder, 3, dropout=0.0, freeze_embeddings=True).eval()
    assert not any(p.requires_grad for p in encoder.get_input_embeddings().parameters())
    ids = torch.tensor([[101, 2073, 2003, 102]])
    padded = torch.tensor([[101, 2073, 2003, 102, 0, 0]])
    with torch.no_grad():
        a = model(ids, torch.ones_like(ids))
        b = model(padded, torch.tensor([[1, 1, 1, 1, 0, 0]]))
    assert a.shape == (1, 3)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_a_fine_tuned_classifier_round_trips_through_its_folder(tmp_path, tokenizer):
    settings = FineTuneSettings(("cancel", "track"), 16, dropout=0.0)
    torch.manual_seed(0)
    model = EncoderClassifier(_load_transformer(default_model_path()), 2, 0.0)
    classifier = FineTunedClassifier(settings, model, tokenizer, batch_size=2)
    proba = classifier.predict_proba(TEXTS)
    assert proba.shape == (5, 2)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    emb = classifier.embed(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    both = classifier.predict_and_embed(TEXTS)
    np.testing.assert_allclose(both[0], proba, atol=1e-6)
    np.testing.assert_allclose(both[1], emb, atol=1e-6)
    loaded = load_classifier(classifier.save(tmp_path / "clf"))
    assert isinstance(loaded, FineTunedClassifier) and loaded.labels == settings.labels
    np.testing.assert_allclose(loaded.predict_proba(TEXTS), proba, atol=1e-5)


def test_baselines_learn_the_words_and_round_trip(tmp_path):
    texts = TEXTS * 4
    labels = LABELS * 4
    tfidf = TfidfClassifier.train(texts, labels, ("cancel", "refund", "track"))
    proba = tfidf.predict_proba(["please cancel the order", "track my parcel"])
    # A label without training rows gets probability 0, the others the model's.
    assert proba.shape == (2, 3) and (proba[:, 1] == 0).all()
    assert np.asarray(tfidf.labels)[proba.argmax(1)].tolist() == ["cancel", "track"]
    np.testing.assert_allclose(load_classifier(tfidf.save(tmp_path / "tfidf")).predict_proba(texts), tfidf.predict_proba(texts))
    frozen = FrozenEncoderClassifier.train(TextEncoderConfig(batch_size=4, max_length=16), texts, labels, ("cancel", "track"))
    assert np.asarray(frozen.labels)[frozen.predict_proba(["please cancel the order"]).argmax(1)].tolist() == ["cancel"]
    np.testing.assert_allclose(
        load_classifier(frozen.save(tmp_path / "frozen")).predict_proba(texts), frozen.predict_proba(texts), atol=1e-6
    )


def test_a_bundle_predicts_the_top_label_with_its_probability(tmp_path):
    tfidf = TfidfClassifier.train(TEXTS * 4, LABELS * 4, ("cancel", "track"))
    bundle = TextBundle(SUPPORT, tfidf, 0.7, None, {"model_name": "tfidf_lr"})
    loaded = TextBundle.load(bundle.save(tmp_path / "bundle"))
    pred = loaded.predict(["cancel my order", "where is my parcel"])
    assert pred.labels == ["cancel", "track"] and loaded.threshold == 0.7 and loaded.kind == "tfidf_lr"
    assert pred.embeddings is None
    both = loaded.predict(["cancel my order", "where is my parcel"], embed=True)
    np.testing.assert_allclose(both.probabilities, pred.probabilities)
    np.testing.assert_allclose(both.embeddings, loaded.classifier.embed(["cancel my order", "where is my parcel"]))
    top = pred.top(0, 2)
    assert top[0] == ("cancel", pytest.approx(float(pred.confidences[0]))) and top[1][0] == "track"
    with pytest.raises(ValueError, match="holds a support model, not a categorization model"):
        TextBundle.load(tmp_path / "bundle", "categorization")
    with pytest.raises(ValueError, match="unknown text task"):
        TextBundle("translation", tfidf, 0.5)


def test_length_buckets_keep_every_row_once_and_cut_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 60, size=1000)
    plain = epoch_batches(1000, 8, 0, 0, 2, seed=1)
    bucketed = epoch_batches(1000, 8, 0, 0, 2, seed=1, lengths=lengths)
    assert sorted(np.concatenate(bucketed).tolist()) == sorted(np.concatenate(plain).tolist())
    assert len(bucketed) == len(plain) == len(epoch_batches(1000, 8, 0, 1, 2, seed=1, lengths=lengths))

    def padded(batches):
        return sum(int(lengths[b].max()) * len(b) for b in batches)

    assert padded(bucketed) < 0.75 * padded(plain)


def _one_edit(word: str) -> set[str]:
    inner = range(1, len(word) - 1)
    return (
        {word[:k] + word[k + 1 :] for k in inner}
        | {word[:k] + word[k + 1] + word[k] + word[k + 2 :] for k in inner}
        | {word[: k + 1] + word[k:] for k in inner}
    )


def test_typos_change_only_long_words_by_one_edit():
    from shoplake.text.fine_tune import add_typos

    rng = np.random.default_rng(5)
    text = "I want to cancel purchase 12345 now"
    assert add_typos(text, 0.0, rng) == text
    for _ in range(20):
        typed = add_typos(text, 0.99, rng).split(" ")
        for word, got in zip(text.split(" "), typed, strict=True):
            if len(word) < 4 or not word.isalpha():
                assert got == word  # short words and numbers stay
            elif got != word:  # a swap of two equal letters leaves the word as it was
                assert got in _one_edit(word)
    changed = sum(add_typos("purchase", 0.5, rng) != "purchase" for _ in range(400))
    assert 150 < changed < 250


def test_typo_batches_are_retokenized_each_epoch(tokenizer):
    settings = FineTuneSettings(("cancel", "track"), 16)
    targets = label_index(settings.labels, LABELS)
    task = FineTuneTask(settings, default_model_path(), tokenize(tokenizer, TEXTS, 16), targets, 5, seed=1, texts=TEXTS, typo_rate=0.9)
    clean = FineTuneTask(settings, default_model_path(), tokenize(tokenizer, TEXTS, 16), targets, 5, seed=1)
    for epoch in range(2):
        ((ids, _, got),) = task.batches(epoch, 0, 1)
        ((ids_clean, _, want),) = clean.batches(epoch, 0, 1)
        # The same rows in the same order, the texts misspelt: other tokens.
        assert got.tolist() == want.tolist()
        assert ids.shape != ids_clean.shape or not torch.equal(ids, ids_clean)
