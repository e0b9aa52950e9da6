"""Ranking metrics against numbers worked out by hand on tiny rankings."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import sparse

from shoplake.recommend.metrics import catalogue_coverage, evaluate, hit_rate_at_k, mrr, ndcg_at_k, rank_items, recall_at_k

# One user, ten items; the only relevant item, 2, is ranked second.
RANKING = np.array([[5, 2, 0, 1, 3, 4, 6, 7, 8, 9]])
RELEVANT = [{2}]


def test_single_relevant_item_ranked_second():
    assert ndcg_at_k(RANKING, RELEVANT, 10) == pytest.approx(1 / math.log2(3))
    assert mrr(RANKING, RELEVANT) == pytest.approx(0.5)
    assert hit_rate_at_k(RANKING, RELEVANT, 10) == 1.0
    assert recall_at_k(RANKING, RELEVANT, 10) == 1.0
    assert recall_at_k(RANKING, RELEVANT, 1) == 0.0
    assert hit_rate_at_k(RANKING, RELEVANT, 1) == 0.0
    assert ndcg_at_k(RANKING, RELEVANT, 1) == 0.0


def test_two_relevant_items():
    topk = np.array([[0, 1, 3, 2]])
    relevant = [{0, 3}]
    # DCG = 1/log2(2) + 1/log2(4) = 1.5; ideal = 1 + 1/log2(3).
    assert ndcg_at_k(topk, relevant, 4) == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert recall_at_k(topk, relevant, 2) == pytest.approx(0.5)
    assert recall_at_k(topk, relevant, 3) == pytest.approx(1.0)
    assert mrr(topk, relevant) == pytest.approx(1.0)


def test_ideal_dcg_is_cut_at_k():
    topk = np.array([[0, 1, 7]])
    relevant = [{0, 1, 2}]
    # Both slots of the top 2 hold relevant items: as good as a ranking of 2 can be.
    assert ndcg_at_k(topk, relevant, 2) == pytest.approx(1.0)
    # Recall divides by all 3 relevant items.
    assert recall_at_k(topk, relevant, 2) == pytest.approx(2 / 3)


def test_mean_over_users_and_users_without_relevant_items_skipped():
    topk = np.array([[1, 0, 2], [0, 1, 2], [2, 1, 0]])
    relevant = [{1}, {2}, set()]
    # User 0: hit at rank 1; user 1: hit at rank 3; user 2 is skipped, not a zero.
    assert mrr(topk, relevant) == pytest.approx((1 + 1 / 3) / 2)
    assert hit_rate_at_k(topk, relevant, 1) == pytest.approx(0.5)
    assert ndcg_at_k(topk, relevant, 3) == pytest.approx((1 + 1 / math.log2(4)) / 2)
    assert recall_at_k(topk, relevant, 2) == pytest.approx(0.5)


def test_mrr_is_zero_without_a_hit_and_nan_without_users():
    topk = np.array([[0, 1]])
    assert mrr(topk, [{5}]) == 0.0
    assert math.isnan(mrr(topk, [set()]))
    assert math.isnan(ndcg_at_k(topk, [set()], 2))


def test_k_beyond_ranking_is_an_error():
    with pytest.raises(ValueError, match="exceeds the ranking length"):
        recall_at_k(np.array([[0, 1]]), [{0}], 3)
    with pytest.raises(ValueError, match="users"):
        mrr(np.array([[0, 1]]), [{0}, {1}])


def test_padding_never_counts_as_a_hit():
    topk = np.array([[3, -1, -1]])
    assert hit_rate_at_k(topk, [{0}], 3) == 0.0
    assert catalogue_coverage(topk, 4) == pytest.approx(0.25)


def test_rank_items_orders_by_score():
    scores = np.array([[0.1, 0.9, 0.5, 0.3], [0.4, 0.2, 0.8, 0.0]])
    np.testing.assert_array_equal(rank_items(scores, None, 2), [[1, 2], [2, 0]])


def test_rank_items_ties_broken_by_item_index():
    scores = np.array([[1.0, 2.0, 2.0, 1.0, 2.0]])
    np.testing.assert_array_equal(rank_items(scores, None, 5), [[1, 2, 4, 0, 3]])
    # The same scores give the same ranking every time, whatever the row.
    np.testing.assert_array_equal(rank_items(np.zeros((2, 4)), None, 3), [[0, 1, 2], [0, 1, 2]])


def test_rank_items_exclusion_list():
    scores = np.array([[0.9, 0.8, 0.7, 0.6], [0.9, 0.8, 0.7, 0.6]])
    before = scores.copy()
    topk = rank_items(scores, [np.array([0, 2]), np.array([], dtype=np.int64)], 2)
    np.testing.assert_array_equal(topk, [[1, 3], [0, 1]])
    np.testing.assert_array_equal(scores, before)  # input untouched


def test_rank_items_exclusion_sparse_matches_list():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(5, 8))
    seen = sparse.random(5, 8, density=0.4, format="csr", random_state=1)
    as_list = [seen[u].indices for u in range(5)]
    topk = rank_items(scores, seen, 8)
    np.testing.assert_array_equal(topk, rank_items(scores, as_list, 8))
    for u in range(5):
        assert not set(topk[u]) & set(seen[u].indices.tolist())


def test_rank_items_stored_zero_does_not_exclude():
    seen = sparse.csr_matrix((np.array([0.0, 1.0]), (np.array([0, 0]), np.array([0, 1]))), shape=(1, 3))
    np.testing.assert_array_equal(rank_items(np.array([[3.0, 2.0, 1.0]]), seen, 2), [[0, 2]])


def test_rank_items_pads_when_too_few_items_remain():
    scores = np.array([[0.5, 0.4, 0.3]])
    topk = rank_items(scores, [np.array([1])], 4)
    np.testing.assert_array_equal(topk, [[0, 2, -1, -1]])


def test_rank_items_rejects_nan_and_bad_shapes():
    with pytest.raises(ValueError, match="NaN"):
        rank_items(np.array([[0.1, np.nan]]), None, 1)
    with pytest.raises(ValueError, match="rows"):
        rank_items(np.zeros((2, 3)), [np.array([0])], 1)
    with pytest.raises(ValueError, match="shape"):
        rank_items(np.zeros((2, 3)), sparse.csr_matrix((2, 4)), 1)


def test_catalogue_coverage():
    topk = np.array([[0, 1], [1, 2], [5, 6]])
    assert catalogue_coverage(topk, 10) == pytest.approx(0.5)
    # Restricted to the users that are evaluated: items 0, 1, 2 of 10.
    assert catalogue_coverage(topk, 10, [{0}, {9}, set()]) == pytest.approx(0.3)


def test_evaluate_keys_and_values():
    topk = np.array([[5, 2, 0, 1], [0, 1, 2, 3]])
    relevant = [{2}, {0}]
    out = evaluate(topk, relevant, n_items=8, ks=(1, 4))
    assert set(out) == {
        "ndcg@1", "recall@1", "hr@1", "coverage@1",
        "ndcg@4", "recall@4", "hr@4", "coverage@4", "mrr",
    }  # fmt: skip
    assert out["hr@1"] == pytest.approx(0.5)
    assert out["ndcg@4"] == pytest.approx((1 / math.log2(3) + 1) / 2)
    assert out["mrr"] == pytest.approx(0.75)
    assert out["coverage@1"] == pytest.approx(2 / 8)
    assert out["coverage@4"] == pytest.approx(5 / 8)
