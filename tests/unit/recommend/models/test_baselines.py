"""Popularity and item co-occurrence baselines on a toy user-item matrix."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shoplake.recommend.metrics import rank_items
from shoplake.recommend.models.baselines import EaseModel, ItemCooccurrenceModel, PopularityModel, trending_counts

# Users 0 and 1 both have items 0 and 1; user 2 has items 2 and 3; user 3 only item 0.
USERS = np.array([0, 0, 1, 1, 2, 2, 3])
ITEMS = np.array([0, 1, 0, 1, 2, 3, 0])
N_USERS, N_ITEMS = 4, 5


def test_popularity_ranks_most_popular_first():
    model = PopularityModel().fit(USERS, ITEMS, None, N_USERS, N_ITEMS)
    np.testing.assert_array_equal(model.popularity, [3, 2, 1, 1, 0])
    scores = model.score(np.array([0, 3]))
    assert scores.shape == (2, N_ITEMS)
    np.testing.assert_array_equal(scores[0], scores[1])
    # Items 2 and 3 tie; the lower index comes first.
    np.testing.assert_array_equal(rank_items(scores, None, 5), [[0, 1, 2, 3, 4]] * 2)


def test_popularity_uses_weights_and_exclusion():
    weight = np.array([1, 1, 1, 1, 10, 1, 1], dtype=float)
    model = PopularityModel().fit(USERS, ITEMS, weight, N_USERS, N_ITEMS)
    np.testing.assert_array_equal(model.popularity, [3, 2, 10, 1, 0])
    topk = rank_items(model.score(np.array([2])), [np.array([2, 3])], 2)
    np.testing.assert_array_equal(topk, [[0, 1]])


def test_cooccurrence_similarity_is_cosine():
    model = ItemCooccurrenceModel().fit(USERS, ITEMS, None, N_USERS, N_ITEMS)
    sim = model.similarity.toarray()
    # Item 0 has users {0, 1, 3}, item 1 has {0, 1}: 2 shared / sqrt(3 * 2).
    assert sim[0, 1] == pytest.approx(2 / math.sqrt(6))
    assert sim[2, 3] == pytest.approx(1.0)
    assert sim[0, 2] == 0.0
    np.testing.assert_allclose(sim, sim.T)
    np.testing.assert_array_equal(np.diag(sim), 0.0)
    assert not np.isnan(sim).any()  # item 4 has no users


def test_cooccurrence_ranks_co_occurring_item_above_unrelated():
    model = ItemCooccurrenceModel().fit(USERS, ITEMS, None, N_USERS, N_ITEMS)
    scores = model.score(np.array([3]))
    # User 3 has item 0, which co-occurs with 1; items 2 and 3 never meet item 0.
    assert scores[0, 1] > scores[0, 2] == scores[0, 3] == 0.0
    topk = rank_items(scores, [np.array([0])], 1)
    np.testing.assert_array_equal(topk, [[1]])


def test_cooccurrence_cold_user_scores_zero():
    model = ItemCooccurrenceModel().fit(USERS[:-1], ITEMS[:-1], None, N_USERS, N_ITEMS)
    np.testing.assert_array_equal(model.score(np.array([3])), np.zeros((1, N_ITEMS)))


def test_cooccurrence_binary_ignores_weights():
    weight = np.array([1, 5, 1, 1, 1, 1, 1], dtype=float)
    binary = ItemCooccurrenceModel().fit(USERS, ITEMS, weight, N_USERS, N_ITEMS)
    plain = ItemCooccurrenceModel().fit(USERS, ITEMS, None, N_USERS, N_ITEMS)
    np.testing.assert_allclose(binary.similarity.toarray(), plain.similarity.toarray())
    weighted = ItemCooccurrenceModel(binary=False).fit(USERS, ITEMS, weight, N_USERS, N_ITEMS)
    # Item 0 is [1, 1, 0, 1], item 1 is [5, 1, 0, 0] over users: 6 / sqrt(3 * 26).
    assert weighted.similarity[0, 1] == pytest.approx(6 / math.sqrt(78))


def test_fit_validates_inputs_and_score_needs_fit():
    with pytest.raises(ValueError, match="length"):
        PopularityModel().fit(USERS, ITEMS[:-1], None, N_USERS, N_ITEMS)
    with pytest.raises(ValueError, match="item_idx"):
        ItemCooccurrenceModel().fit(USERS, ITEMS, None, N_USERS, 3)
    with pytest.raises(ValueError, match="non-negative"):
        PopularityModel().fit(USERS, ITEMS, -np.ones(7), N_USERS, N_ITEMS)
    with pytest.raises(RuntimeError, match="before fit"):
        ItemCooccurrenceModel().score(np.array([0]))


def test_ease_solves_the_ridge_regression_of_every_item_on_the_others():
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 40, 300), rng.integers(0, 8, 300)
    model = EaseModel(l2=3.0).fit(users, items, None, 40, 8)
    x = np.zeros((40, 8))
    x[users, items] = 1.0
    for j in range(8):
        others = [i for i in range(8) if i != j]
        a = x[:, others]
        expected = np.linalg.solve(a.T @ a + 3.0 * np.eye(7), a.T @ x[:, j])
        np.testing.assert_allclose(model.weights[others, j], expected, rtol=1e-4, atol=1e-6)
        assert model.weights[j, j] == 0.0
    kept = model.strongest(3)
    assert (kept.getnnz(axis=1) <= 3).all()
    row = model.weights[0]
    assert set(kept.getrow(0).indices) == set(np.argsort(-row, kind="stable")[:3])
    with pytest.raises(ValueError, match="cap is 4 items"):
        EaseModel(max_items=4).fit(users, items, None, 40, 8)


def test_item_knn_keeps_the_nearest_neighbours_of_the_cosine():
    rng = np.random.default_rng(1)
    users, items = rng.integers(0, 60, 400), rng.integers(0, 12, 400)
    full = ItemCooccurrenceModel().fit(users, items, None, 60, 12).similarity.toarray()
    knn = ItemCooccurrenceModel(neighbors=3).fit(users, items, None, 60, 12).similarity.toarray()
    for i in range(12):
        kept = np.flatnonzero(knn[i])
        assert len(kept) == 3 and set(kept) == set(np.argsort(-full[i], kind="stable")[:3])
        np.testing.assert_allclose(knn[i, kept], full[i, kept])


def test_trending_counts_only_the_last_days():
    day = 86_400.0
    counts = trending_counts(np.array([0, 1, 1, 2, 2, 2]), np.array([1, 8, 9, 2, 3, 4]) * day, 10 * day, 3, 4)
    # Items 1 (two sales in the window) before 2 and 0 (older sales only, by their count), then 3 (none).
    assert counts[1] == pytest.approx(2.0) and counts[2] == pytest.approx(3e-6) and counts[0] == pytest.approx(1e-6)
    assert list(np.argsort(-counts, kind="stable")) == [1, 2, 0, 3]
    with pytest.raises(ValueError, match="days"):
        trending_counts(np.array([0]), np.array([0.0]), day, 0, 1)
