"""The TF-IDF baseline's regularisation chosen on validation with Ray Tune."""

from __future__ import annotations

import numpy as np

from shoplake.text.tuning import search_baseline_c

WORDS = {"refund": ["money back", "refund please", "return my money"], "track": ["where is my parcel", "track order", "delivery status"]}


def texts(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    labels = [str(rng.choice(list(WORDS))) for _ in range(n)]
    return [f"{rng.choice(WORDS[label])} {rng.choice(['now', 'today', 'thanks', ''])}".strip() for label in labels], labels


def test_the_validation_search_picks_baseline_c_from_its_range(make_cfg, ray_local):
    cfg = make_cfg("tuning.num_samples=3", "fine_tuning.baseline_search={baseline_c: {loguniform: [0.5, 5.0]}}")
    train, train_labels = texts(60, 1)
    valid, valid_labels = texts(30, 2)
    tuned, searched = search_baseline_c(cfg, train, train_labels, sorted(WORDS), valid, valid_labels, "tfidf-c")
    assert len(searched.trials) == 3 and searched.max_iterations == 1
    assert tuned.fine_tuning.baseline_c == searched.best.settings["baseline_c"]
    assert 0.5 <= tuned.fine_tuning.baseline_c <= 5.0
    # The two intents have words of their own: every setting separates them on validation.
    assert searched.best.best_score == 1.0


def test_without_a_search_the_configured_c_is_kept(make_cfg):
    cfg = make_cfg("fine_tuning.baseline_search={}")
    assert search_baseline_c(cfg, ["a b"], ["x"], ["x"], ["a"], ["x"], "none") == (cfg, None)
