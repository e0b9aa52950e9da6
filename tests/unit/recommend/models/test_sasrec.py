"""The text-aware SASRec model and its scorer: causality, padding, cold items through text, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shoplake.recommend.models.adjust import adjust_scores, blend_with_prior
from shoplake.recommend.models.sasrec import (
    PAD,
    SasrecScorer,
    TextAwareSASRec,
    build_model,
    dedupe_history,
    encode_histories,
    sequence_loss,
)

N_ITEMS, TEXT_DIM, MAX_LEN = 12, 16, 8


def config(**overrides) -> dict:
    base = {
        "n_items": N_ITEMS,
        "max_len": MAX_LEN,
        "dim": 16,
        "layers": 2,
        "heads": 2,
        "dropout": 0.1,
        "text_fusion": True,
        "id_dropout": 0.0,
        "dedupe": "none",
    }
    return {**base, **overrides}


def random_text(n: int = N_ITEMS, seed: int = 0) -> np.ndarray:
    emb = np.random.default_rng(seed).normal(size=(n, TEXT_DIM)).astype(np.float32)
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)


@pytest.fixture
def model() -> TextAwareSASRec:
    torch.manual_seed(0)
    return build_model(config(), random_text()).eval()


def test_dedupe_keeps_first_or_last_occurrence_in_order():
    items = np.array([3, 1, 3, 2, 1, 4])
    assert dedupe_history(items, "none").tolist() == [3, 1, 3, 2, 1, 4]
    assert dedupe_history(items, "first").tolist() == [3, 1, 2, 4]
    assert dedupe_history(items, "last").tolist() == [3, 2, 1, 4]
    with pytest.raises(ValueError, match="dedupe"):
        dedupe_history(items, "most")


def test_histories_are_left_padded_with_a_start_token_or_cut_to_the_latest_items():
    tokens = encode_histories([np.array([4, 0]), np.array([], dtype=np.int64), np.arange(10)], MAX_LEN, N_ITEMS)
    start = N_ITEMS + 1
    assert tokens[0].tolist() == [PAD] * 5 + [start, 5, 1]
    assert tokens[1].tolist() == [PAD] * 7 + [start]
    assert tokens[2].tolist() == list(range(3, 11))  # the 8 most recent items, shifted by one
    with pytest.raises(ValueError, match="outside"):
        encode_histories([np.array([N_ITEMS])], MAX_LEN, N_ITEMS)


def test_a_later_item_does_not_change_earlier_positions(model):
    tokens = torch.tensor([[PAD, PAD, 13, 3, 5, 7, 2, 9]])
    changed = tokens.clone()
    changed[0, 5] = 11
    with torch.no_grad():
        a, b = model.hidden(tokens), model.hidden(changed)
    torch.testing.assert_close(a[0, :5], b[0, :5])
    assert not torch.allclose(a[0, 5:], b[0, 5:])


def test_padding_neither_leaks_into_real_positions_nor_produces_nan(model):
    short = torch.tensor([[PAD, PAD, PAD, PAD, PAD, 13, 3, 5]])
    with torch.no_grad():
        base = model.hidden(short)
        # What a padding slot holds does not matter: real positions never attend to it.
        model.item_emb.weight[PAD] = 5.0
        other = model.hidden(short)
        # Fewer padding columns (a shorter batch) give the same last state.
        trimmed = model.hidden(short[:, 5:])
    assert torch.isfinite(base).all()
    torch.testing.assert_close(base[0, 5:], other[0, 5:])
    torch.testing.assert_close(base[0, -1], trimmed[0, -1])


def test_a_user_scores_the_same_alone_and_in_a_batch(model):
    scorer = SasrecScorer(config(), model.state_dict(), random_text(), batch_size=2)
    histories = [np.array([1, 2, 3]), np.array([], dtype=np.int64), np.arange(12), np.array([5])]
    together = scorer.score(np.arange(4), histories)
    assert together.shape == (4, N_ITEMS) and together.dtype == np.float32 and np.isfinite(together).all()
    np.testing.assert_allclose(scorer.score(np.array([-1]), [histories[2]])[0], together[2], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="histories"):
        scorer.score(np.arange(3), histories)


def test_loss_over_candidates_matches_the_masked_full_softmax(model):
    inputs = torch.tensor([[PAD, 13, 1, 2, 3, 4, 5, 6]])
    targets = torch.tensor([[PAD, 1, 2, 3, 4, 5, 6, 7]])
    candidates = torch.arange(0, 8)
    loss, n = sequence_loss(model, inputs, targets, candidates)
    logits = model(inputs)[0, 1:, :8]
    expected = torch.nn.functional.cross_entropy(logits, targets[0, 1:] - 1)
    assert n == 7
    torch.testing.assert_close(loss, expected)


def test_the_saved_scorer_loads_with_the_same_scores(tmp_path, model):
    scorer = SasrecScorer(config(), model.state_dict(), random_text())
    histories = [np.array([1, 2, 3]), np.array([7])]
    scorer.save(tmp_path)
    loaded = SasrecScorer.load(tmp_path)
    assert loaded.kind == "sasrec"
    np.testing.assert_allclose(loaded.score(np.arange(2), histories), scorer.score(np.arange(2), histories), rtol=1e-6)
    assert loaded.item_vectors().shape == (N_ITEMS, 16)


def test_fine_tune_text_is_refused(cfg):
    from shoplake.recommend.sequence import model_config_from

    tuned = cfg.model_copy(update={"sequence_model": cfg.sequence_model.model_copy(update={"fine_tune_text": True})})
    with pytest.raises(ValueError, match="fine_tune_text"):
        model_config_from(tuned, N_ITEMS)


def two_taste_groups(n_items: int = 20, seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    """Items 0..9 share one text topic and 10..19 another; users buy within one topic."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2, TEXT_DIM))
    text = np.concatenate([centres[0] + 0.3 * rng.normal(size=(10, TEXT_DIM)), centres[1] + 0.3 * rng.normal(size=(10, TEXT_DIM))])
    text = (text / np.linalg.norm(text, axis=1, keepdims=True)).astype(np.float32)
    # Items 8, 9 (topic A) and 18, 19 (topic B) never occur: the cold items.
    sequences = [rng.choice(np.arange(8) + 10 * (u % 2), size=6, replace=True) for u in range(200)]
    return text, sequences


def test_a_cold_item_ranks_by_how_close_its_text_is_to_the_users_taste():
    from shoplake.recommend.sequence import sequence_windows

    text, sequences = two_taste_groups()
    cfg = config(n_items=20, max_len=6, id_dropout=0.3, item_bias=True)
    windows = sequence_windows(sequences, 6, 20)
    inputs, targets = windows.inputs, windows.targets
    known = np.zeros(20, dtype=bool)
    known[targets[targets != PAD] - 1] = True
    assert not known[[8, 9, 18, 19]].any() and known[[0, 10]].all()
    torch.manual_seed(0)
    model = build_model(cfg, text, known)
    candidates = torch.from_numpy(np.flatnonzero(known))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = torch.from_numpy(inputs), torch.from_numpy(targets)
    for _ in range(60):
        optimizer.zero_grad()
        loss, _ = sequence_loss(model, x, y, candidates)
        loss.backward()
        optimizer.step()
    scorer = SasrecScorer(cfg, model.state_dict(), text)
    scores = scorer.score(np.arange(2), [np.array([0, 1, 2]), np.array([10, 11, 12])])
    # Topic A history: the cold topic A items beat the cold topic B ones, and vice versa.
    assert scores[0, [8, 9]].min() > scores[0, [18, 19]].max()
    assert scores[1, [18, 19]].min() > scores[1, [8, 9]].max()
    # Without text the cold items cannot be told apart: their representations are equal (zero).
    blind = SasrecScorer(
        cfg | {"text_fusion": False}, {k: v for k, v in model.state_dict().items() if not k.startswith(("text_proj", "text_bias"))}, text
    )
    vectors = blind.item_vectors()
    np.testing.assert_allclose(vectors[8], vectors[18])


def test_seen_mask_marks_each_positions_own_prefix():
    from shoplake.recommend.models.sasrec import seen_mask

    inputs = torch.tensor([[PAD, 13, 3, 5, 3], [13, 1, 2, 4, 6]])
    select = torch.tensor([[False, True, True, False, True], [False, False, True, True, False]])
    mask = seen_mask(inputs, select, N_ITEMS)
    # Rows: (0,1) start only; (0,2) item 2; (0,4) items 2, 4; (1,2) items 0, 1; (1,3) items 0, 1, 3.
    assert [np.flatnonzero(m).tolist() for m in mask.numpy()] == [[], [2], [2, 4], [0, 1], [0, 1, 3]]
    candidates = torch.tensor([1, 2, 4])
    sub = seen_mask(inputs, select, N_ITEMS, candidates)
    assert [np.flatnonzero(m).tolist() for m in sub.numpy()] == [[], [1], [1, 2], [0], [0]]


def test_windows_cover_every_item_once_and_shuffle_only_within_baskets():
    from shoplake.recommend.sequence import sequence_windows

    items = np.arange(12)
    times = np.repeat([10, 20, 30, 40], 3)  # four baskets of three
    weights = np.linspace(0.1, 1.0, 12).astype(np.float32)
    windows = sequence_windows([items], 5, N_ITEMS, weights=[weights], timestamps=[times])
    targets = windows.targets[windows.targets != PAD] - 1
    assert sorted(targets.tolist()) == items.tolist()  # each item a target exactly once
    assert windows.tokens[-1].tolist() == [PAD, PAD, PAD, 13, 1, 2]  # the user's first window: start token, items 0, 1
    w = dict(zip(windows.targets.ravel().tolist(), windows.weights[:, 1:].ravel().tolist()))
    assert w[12] == pytest.approx(1.0) and w[1] == pytest.approx(0.1)

    for seed in range(5):
        shuffled = windows.shuffled(np.random.default_rng(seed))
        for row, original in zip(shuffled.tokens, windows.tokens):
            real = original != PAD
            assert (row[~real] == PAD).all()  # padding stays on the left
            # Each token stays inside its basket, and weights travel with tokens.
            assert ((row[real] - 1) // 3).tolist() == ((original[real] - 1) // 3).tolist()
        moved = dict(zip(shuffled.tokens.ravel().tolist(), shuffled.weights.ravel().tolist()))
        assert moved[12] == pytest.approx(1.0)
    orders = {tuple(windows.shuffled(np.random.default_rng(seed)).tokens[0]) for seed in range(10)}
    assert len(orders) > 1


def test_old_windows_are_dropped_by_recency():
    from shoplake.recommend.sequence import recency_weights, sequence_windows

    day = 86400.0
    times = [np.array([0.0, 1, 2, 300, 301]) * day, np.array([0.0, 1]) * day]
    weights = recency_weights(times, half_life_days=7)
    assert weights[0][-1] == pytest.approx(1.0) and weights[0][3] == pytest.approx(0.5 ** (1 / 7))
    windows = sequence_windows([np.arange(5), np.array([6, 7])], 2, N_ITEMS, weights=weights, timestamps=times)
    # Only the first user's last window (items 3, 4) is recent enough to train on.
    assert windows.targets[windows.targets != PAD].tolist() == [4, 5]


def test_masking_seen_items_keeps_a_repeated_target_and_lowers_the_loss(model):
    inputs = torch.tensor([[PAD, 13, 1, 2, 3, 2, 4, 5]])
    targets = torch.tensor([[PAD, 1, 2, 3, 2, 4, 5, 1]])  # items 1 and 0 come back
    plain, n = sequence_loss(model, inputs, targets)
    masked, n_masked = sequence_loss(model, inputs, targets, mask_seen=True)
    assert n == n_masked == 7
    assert torch.isfinite(masked) and masked < plain


def test_the_trending_blend_mixes_probabilities_from_the_model_alone_to_the_prior_alone():
    logits = np.array([[2.0, 1.0, 0.0, -1.0]])
    prior = np.array([0.0, 0.0, 5.0, 1.0])
    np.testing.assert_array_equal(blend_with_prior(logits, prior, 0.0), logits)
    assert np.argsort(-blend_with_prior(logits, prior, 1.0)[0])[:2].tolist() == [2, 3]
    mixed = np.exp(blend_with_prior(logits, prior, 0.5)[0])
    p = np.exp(logits[0]) / np.exp(logits[0]).sum()
    np.testing.assert_allclose(mixed, 0.5 * p + 0.5 * prior / prior.sum())
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        blend_with_prior(logits, prior, 1.5)


def test_the_cold_boost_lifts_only_the_items_without_interactions():
    logits = np.array([[3.0, 2.0, 1.0]])
    out = adjust_scores(logits, unknown=np.array([False, False, True]), cold_boost=2.5)
    assert out[0].tolist() == [3.0, 2.0, 3.5]


def test_the_served_scorer_keeps_its_boost_and_prior_through_save_and_load(tmp_path):
    torch.manual_seed(0)
    known = np.ones(N_ITEMS, dtype=bool)
    known[5] = False  # a new listing
    model = build_model(config(item_bias=True), random_text(), known)
    prior = np.arange(N_ITEMS, dtype=np.float64)
    scorer = SasrecScorer(config(item_bias=True), model.state_dict(), random_text()).with_settings(prior, cold_boost=1.5, blend=0.3)
    assert scorer.unknown().tolist() == [i == 5 for i in range(N_ITEMS)]
    histories = [np.array([1, 2, 3])]
    plain = SasrecScorer(config(item_bias=True), model.state_dict(), random_text()).score(np.arange(1), histories)
    expected = adjust_scores(plain, scorer.unknown(), 1.5, prior, 0.3)
    np.testing.assert_allclose(scorer.score(np.arange(1), histories), expected, rtol=1e-5)
    scorer.save(tmp_path)
    np.testing.assert_allclose(SasrecScorer.load(tmp_path).score(np.arange(1), histories), expected, rtol=1e-5)


def test_the_ease_blend_mixes_the_positive_part_of_the_partners_scores_per_user():
    logits = np.array([[2.0, 1.0, 0.0, -1.0], [0.0, 0.0, 0.0, 0.0]])
    partner = np.array([[-3.0, 0.0, 2.0, 2.0], [1.0, 0.0, 0.0, -1.0]])
    out = np.exp(adjust_scores(logits, np.zeros(4, bool), partner=partner, partner_blend=0.25))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    shares = np.array([[0.0, 0.0, 0.5, 0.5], [1.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(out, 0.75 * p + 0.25 * shares)
    np.testing.assert_array_equal(adjust_scores(logits, np.zeros(4, bool), partner=partner, partner_blend=0.0), logits)


def test_the_served_scorer_keeps_its_ease_partner_through_save_and_load(tmp_path):
    from scipy import sparse

    from shoplake.recommend.models.scorers import EaseScorer

    torch.manual_seed(0)
    model = build_model(config(), random_text(), np.ones(N_ITEMS, dtype=bool))
    weights = np.zeros((N_ITEMS, N_ITEMS))
    weights[1, 7], weights[2, 9] = 2.0, -1.0
    partner = EaseScorer(sparse.csr_matrix(weights))
    scorer = SasrecScorer(config(), model.state_dict(), random_text()).with_settings(None, partner, ease_blend=0.5, ease_l2=100.0)
    histories = [np.array([1, 2]), np.array([3])]
    plain = SasrecScorer(config(), model.state_dict(), random_text()).score(np.arange(2), histories)
    expected = adjust_scores(plain, scorer.unknown(), partner=partner.score(np.arange(2), histories), partner_blend=0.5)
    served = scorer.score(np.arange(2), histories)
    np.testing.assert_allclose(served, expected, rtol=1e-5)
    assert np.argmax(served[0]) == 7  # half the first user's mass sits on EASE's one positive neighbour
    scorer.save(tmp_path)
    loaded = SasrecScorer.load(tmp_path)
    assert loaded.partner is not None
    np.testing.assert_allclose(loaded.score(np.arange(2), histories), expected, rtol=1e-5)
