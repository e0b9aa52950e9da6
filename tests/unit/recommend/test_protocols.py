"""The evaluation protocols on hand-made interactions: which purchases are held out, and that nothing later is learnt from."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from shoplake.config import ConfigError, load_config
from shoplake.evaluation import TEST, VALIDATION
from shoplake.recommend.fitting import count_scorer
from shoplake.recommend.holdout import day_start
from shoplake.recommend.protocols import holdout_splits, leave_last_out_splits, rolling_cutoffs, target_days, window_split

D = dt.date(2024, 3, 20)


def at(day: int, hour: int = 12, minute: int = 0) -> float:
    """Seconds since the epoch of a time in March 2024 (UTC)."""
    return dt.datetime(2024, 3, day, hour, minute, tzinfo=dt.timezone.utc).timestamp()


ROWS = [
    # u1: purchase days 2, 4 and 6; a view after the last purchase is no purchase.
    ("u1", "i1", "purchase", at(2)),
    ("u1", "i2", "purchase", at(4)),
    ("u1", "i3", "purchase", at(6)),
    ("u1", "i4", "view", at(7)),
    # u2: a view, then purchases on days 3 and 5; a repeat of i1 on day 8 is no new item.
    ("u2", "i5", "view", at(1)),
    ("u2", "i1", "purchase", at(3)),
    ("u2", "i2", "purchase", at(5)),
    ("u2", "i1", "purchase", at(8)),
    # u3: one order of two lines (one timestamp) on day 9, an earlier purchase on day 2.
    ("u3", "i4", "purchase", at(2)),
    ("u3", "i1", "purchase", at(9, 15)),
    ("u3", "i3", "purchase", at(9, 15)),
    # u4: views i5 and buys it minutes later on day 10; bought i2 on day 1.
    ("u4", "i2", "purchase", at(1)),
    ("u4", "i5", "view", at(10, 10, 0)),
    ("u4", "i5", "purchase", at(10, 10, 5)),
    # u5: a single purchase day (7), after a view.
    ("u5", "i1", "view", at(1)),
    ("u5", "i2", "purchase", at(7)),
]


@pytest.fixture
def rcfg(make_cfg):
    return make_cfg("recommender.holdout_days=7")


def items_of(split, user: str) -> list[str]:
    train = split.train
    u = train.user_ids.lookup([user])[0]
    return sorted(train.item_ids.decode(split.relevant[u])) if u >= 0 else []


def test_leave_last_out_picks_the_last_purchase_day_and_the_one_before(rcfg, make_events):
    events = make_events(ROWS, D)
    test_day, validation_day, _ = target_days(events, rcfg)
    day = {u: (test_day[n], validation_day[n]) for n, u in enumerate(events.user_ids.ids)}
    assert day["u1"] == (day_start(at(6)), day_start(at(4)))
    assert day["u2"] == (day_start(at(5)), day_start(at(3)))  # the repeat on day 8 is not a new item
    assert day["u3"] == (day_start(at(9)), day_start(at(2)))
    assert day["u4"] == (day_start(at(10)), day_start(at(1)))

    validation, test = leave_last_out_splits(events, rcfg)
    assert (validation.split, test.split) == (VALIDATION, TEST)
    assert items_of(test, "u1") == ["i3"] and items_of(validation, "u1") == ["i2"]
    assert items_of(test, "u2") == ["i2"] and items_of(validation, "u2") == ["i1"]
    assert items_of(test, "u3") == ["i1", "i3"]  # the whole order, not one line of it
    assert items_of(test, "u4") == ["i5"]  # viewed the same day: still new as of the day's start
    # Nothing before their first purchase day: u3 and u4 cannot be judged on it.
    assert items_of(validation, "u3") == [] and items_of(validation, "u4") == []
    assert test.cutoff == dt.date(2024, 3, 5) and validation.cutoff == dt.date(2024, 3, 3)  # the earliest judged target day


def test_leave_last_out_learns_nothing_at_or_after_a_users_target_day(rcfg, make_events):
    events = make_events(ROWS, D)
    test_day, validation_day, _ = target_days(events, rcfg)
    validation, test = leave_last_out_splits(events, rcfg)
    for split, bound_of in ((test, test_day), (validation, np.where(np.isnan(validation_day), test_day, validation_day))):
        train = split.train
        for u, user in enumerate(train.user_ids.ids):
            bound = bound_of[events.user_ids.lookup([user])[0]]
            assert (train.times[u] < bound).all(), (split.split, user)  # the sequence, and so the history ranked from
            assert train.user_bounds[u] == bound
            assert (split.available_from[u] == bound) or not split.relevant[u]
        # The pairs every global model learns from hold no held-out purchase of anyone.
        pairs = set(zip(train.user_ids.decode(train.pair_users), train.item_ids.decode(train.pair_items)))
        held = {(user, i) for u, user in enumerate(train.user_ids.ids) for i in train.item_ids.decode(split.relevant[u])}
        assert not pairs & held
    # u4's view of i5 minutes before buying it is on the target day: not in the test history.
    u4 = test.train.user_ids.lookup(["u4"])[0]
    assert test.train.item_ids.decode(test.train.sequences[u4]) == ["i2"]
    # In validation no user's test purchase is learnt from, not even of users without a validation target.
    u5 = validation.train.user_ids.lookup(["u5"])[0]
    assert validation.train.item_ids.decode(validation.train.sequences[u5]) == ["i1"]


def test_counts_of_leave_last_out_are_taken_as_of_each_users_own_day(rcfg, make_events):
    _, test = leave_last_out_splits(make_events(ROWS, D), rcfg)
    trending = count_scorer("trending", test.train, rcfg, days=30)
    train = test.train
    rows = trending.score(np.arange(train.n_users), None)
    i5 = train.item_ids.lookup(["i5"])[0]
    u1, u4 = train.user_ids.lookup(["u1", "u4"])
    # u1's day is March 6: u2's view of i5 (March 1) counts, u4's view and purchase (March 10) do not.
    assert rows[u1, i5] == 1
    # u4's day is March 10: its own i5 interactions that day are not counted for it.
    assert rows[u4, i5] == 1


def test_a_time_window_judges_the_purchases_of_its_days_from_the_history_before_it(rcfg, make_events):
    events = make_events(ROWS, D, catalogue=["i9"], listed={"i9": at(8, 6)})
    split = window_split(events, rcfg, dt.date(2024, 3, 6), dt.date(2024, 3, 13))
    train = split.train
    assert max(t.max() for t in train.times) < at(6, 0)  # a global bound
    assert items_of(split, "u1") == ["i3"]
    assert items_of(split, "u2") == []  # the day-8 purchase of i1 repeats one it had
    assert items_of(split, "u3") == ["i1", "i3"]
    assert items_of(split, "u4") == ["i5"]
    # i9 is listed on March 8: after u1's first held-out day (6), before u3's (9).
    u1, u3 = train.user_ids.lookup(["u1", "u3"])
    i9 = train.item_ids.lookup(["i9"])[0]
    hidden = split.unavailable(np.array([u1, u3]))
    assert hidden[0, i9] and not hidden[1, i9]
    assert split.cold_items[i9] and not split.cold_items[train.item_ids.lookup(["i1"])[0]]


def test_the_cold_slice_keeps_only_items_a_user_could_have_been_shown(rcfg, make_events):
    rows = [*ROWS, ("u1", "i8", "purchase", at(6, 18)), ("u2", "i8", "purchase", at(8, 9))]
    events = make_events(rows, D, listed={"i8": at(6, 17)})
    split = window_split(events, rcfg, dt.date(2024, 3, 6), dt.date(2024, 3, 13))
    cold = split.relevant_cold()
    by_user = {user: sorted(split.train.item_ids.decode(cold[u])) for u, user in enumerate(split.train.user_ids.ids)}
    # i8 first appeared on March 6, u1's first held-out day: out of u1's catalogue; in u2's (day 8).
    assert by_user["u1"] == [] and by_user["u2"] == ["i8"]


def test_rolling_cutoffs_are_spaced_from_the_test_window_back(make_cfg):
    cfg = make_cfg("recommender.protocol=rolling", "recommender.holdout_days=7", "recommender.rolling_cutoffs=4",
                   "recommender.rolling_spacing_days=10")  # fmt: skip
    assert rolling_cutoffs(cfg, D) == [dt.date(2024, 2, 12), dt.date(2024, 2, 22), dt.date(2024, 3, 3), dt.date(2024, 3, 13)]
    adjacent = make_cfg("recommender.protocol=rolling", "recommender.holdout_days=7")
    assert rolling_cutoffs(adjacent, D) == [dt.date(2024, 2, 28), dt.date(2024, 3, 6), dt.date(2024, 3, 13)]
    assert rolling_cutoffs(make_cfg("recommender.holdout_days=7"), D) == [dt.date(2024, 3, 6), dt.date(2024, 3, 13)]
    with pytest.raises(ConfigError, match="rolling_spacing_days"):
        load_config("local", ["recommender.holdout_days=14", "recommender.rolling_spacing_days=7"])


def test_rolling_splits_validate_on_the_earlier_windows_and_drop_empty_ones(make_cfg, make_events):
    cfg = make_cfg("recommender.protocol=rolling", "recommender.holdout_days=3", "recommender.rolling_cutoffs=4")
    validations, test = holdout_splits(cfg, make_events(ROWS, dt.date(2024, 3, 11)))
    # Windows [2, 5), [5, 8), [8, 11): test [8, 11); [2, 5) is kept, its users had something before March 2;
    # the first window [Feb 28, Mar 2) has nobody with a history before it.
    assert [(s.cutoff, s.end, s.split) for s in validations] == [
        (dt.date(2024, 3, 2), dt.date(2024, 3, 5), VALIDATION), (dt.date(2024, 3, 5), dt.date(2024, 3, 8), VALIDATION)
    ]  # fmt: skip
    assert (test.cutoff, test.end, test.split, test.protocol) == (dt.date(2024, 3, 8), dt.date(2024, 3, 11), TEST, "rolling")
