"""Customers: their tastes, countries, cards, devices, addresses and accounts."""

from __future__ import annotations

import numpy as np

from shoplake.datagen.shop.common import _COUNTRIES, _COUNTRY_P, _S_USERS, _rng
from shoplake.ingest import landing as L


class CustomersMixin:
    """Customers: their tastes, countries, cards, devices, addresses and accounts. A part of :class:`shoplake.datagen.synthetic._Shop`."""

    def _build_users(self) -> None:
        rng, nu, nc = _rng(self.p.seed, _S_USERS), self.p.users, self.n_cat
        # A favourite is only a signal if some categories are not favourites.
        n_fav = np.minimum(rng.choice([1, 2, 3], size=nu, p=[0.35, 0.4, 0.25]), nc - 1)
        order = rng.permuted(np.tile(np.arange(nc), (nu, 1)), axis=1)
        ranks = np.arange(nc)[None, :]
        w = np.where(ranks < n_fav[:, None], 0.55**ranks, 0.0)
        w /= w.sum(axis=1, keepdims=True)
        # Most of a user's attention goes to the favourites; the rest is spread evenly.
        taste = np.full((nu, nc), 0.2 / nc)
        np.add.at(taste, (np.repeat(np.arange(nu), nc), order.ravel()), 0.8 * w.ravel())
        self.taste = taste
        self.n_fav = n_fav
        self.fav_order = order
        self.fav_mask = np.zeros((nu, nc), dtype=bool)
        for r in range(int(n_fav.max())):
            rows = np.flatnonzero(n_fav > r)
            self.fav_mask[rows, order[rows, r]] = True
        self.level = rng.choice(3, size=nu, p=[0.35, 0.45, 0.2])
        self.activity = rng.lognormal(0.0, 0.7, nu)
        self.act_cdf = np.cumsum(self.activity)
        self.country = rng.choice(len(_COUNTRIES), size=nu, p=_COUNTRY_P / _COUNTRY_P.sum())
        self.method = rng.choice(len(L.PAYMENT_METHODS), size=nu, p=[0.7, 0.25, 0.05])
        self.user_width = max(5, len(str(2 * nu)))
        self.user_ids = np.array([f"u{k:0{self.user_width}d}" for k in range(1, nu + 1)] + [None], dtype=object)
        self.n_accounts = nu  # fraud accounts are numbered after the registered users
        self.card_seq = 0
        self.device_seq = 0
        self.card = np.array([self._new_card() for _ in range(nu)], dtype=object)
        self.device = np.array([self._new_device() for _ in range(nu)], dtype=object)
        self.ip = np.array([self._new_ip(rng) for _ in range(nu)], dtype=object)

    def _new_card(self) -> str:
        self.card_seq += 1
        return f"card{self.card_seq:08d}"

    def _new_device(self) -> str:
        self.device_seq += 1
        return f"dev{self.device_seq:08d}"

    @staticmethod
    def _new_ip(rng: np.random.Generator) -> str:
        a, b, c, d = rng.integers(1, 255, size=4)
        return f"{a}.{b}.{c}.{d}"

    def _new_account(self) -> tuple[int, str]:
        """A fraud account: index into ``user_ids`` and its id."""
        self.n_accounts += 1
        uid = f"u{self.n_accounts:0{self.user_width}d}"
        self.user_ids = np.concatenate([self.user_ids[:-1], np.array([uid, None], dtype=object)])
        self.fraud_accounts.append(uid)
        return len(self.user_ids) - 2, uid
