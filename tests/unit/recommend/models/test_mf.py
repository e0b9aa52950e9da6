"""Matrix factorization: shapes, a loss that goes down on a toy problem, id maps."""

from __future__ import annotations

import pytest
import torch

from shoplake.recommend.models.mf import IdMap, MatrixFactorization, confidence, implicit_loss, mf_step_loss


def test_forward_returns_one_logit_per_pair():
    model = MatrixFactorization(n_users=5, n_items=7, dim=4)
    users, items = torch.tensor([0, 1, 4]), torch.tensor([6, 0, 3])
    logits = model(users, items)
    assert logits.shape == (3,)
    assert model.user_emb.weight.shape == (5, 4) and model.item_emb.weight.shape == (7, 4)
    assert model.user_bias.weight.shape == (5, 1) and model.item_bias.weight.shape == (7, 1)


def test_loss_is_a_scalar_and_weights_raise_confidence():
    pos, neg = torch.zeros(4), torch.zeros(4, 3)
    loss = implicit_loss(pos, neg, torch.ones(4))
    assert loss.shape == () and loss.item() == pytest.approx(2 * torch.log(torch.tensor(2.0)).item())
    assert torch.all(confidence(torch.tensor([0.0, 1.0, 10.0])).diff() > 0)
    assert implicit_loss(pos, torch.empty(0), torch.ones(4)).item() == pytest.approx(torch.log(torch.tensor(2.0)).item())


def test_loss_decreases_on_a_toy_problem():
    # Two taste groups: users 0-3 like items 0-3, users 4-7 like items 4-7.
    torch.manual_seed(0)
    users = torch.tensor([u for u in range(8) for i in range(4)])
    items = torch.tensor([i + (4 if u >= 4 else 0) for u in range(8) for i in range(4)])
    weights = torch.ones(len(users))
    model = MatrixFactorization(8, 8, dim=4)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = mf_step_loss(model, users, items, weights, n_items=8, negatives=2, weight_decay=1e-4, generator=gen)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    with torch.no_grad():
        liked = model(torch.tensor([0, 5]), torch.tensor([1, 6]))
        other = model(torch.tensor([0, 5]), torch.tensor([6, 1]))
    assert torch.all(liked > other)


def test_id_map_round_trip():
    ids = IdMap.fit(["u3", "u1", "u2", "u1"])
    assert ids.ids == ["u1", "u2", "u3"] and len(ids) == 3 and "u2" in ids
    assert ids.encode(["u3", "u1"]) == [2, 0]
    assert ids.decode([2, 0]) == ["u3", "u1"]
    assert IdMap.from_json(ids.to_json()) == ids
    with pytest.raises(KeyError, match="u9"):
        ids.encode(["u9"])
    with pytest.raises(ValueError):
        IdMap(["a", "a"])
