"""Fine-tuning the text encoder on Ray Train with 2 workers: the loss falls, and a failed worker resumes."""

from __future__ import annotations

import pytest

from shoplake.text.classifier import label_index
from shoplake.text.encoder import default_model_path, load_encoder
from shoplake.text.fine_tune import FineTuneSettings, FineTuneTask, tokenize
from shoplake.train.loop import fit, warmup_linear

INTENTS = {
    "cancel_order": ["please cancel order {n}", "I want to cancel my purchase {n}", "cancel {n} now, I changed my mind"],
    "track_order": ["where is my parcel {n}", "track order {n} for me", "my package {n} has not arrived"],
    "get_refund": ["I want my money back for {n}", "refund order {n} please", "how do I get a refund for {n}"],
}


def examples() -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for intent, templates in INTENTS.items():
        for n in range(12):
            texts.append(templates[n % 3].format(n=1000 + n))
            labels.append(intent)
    return texts, labels  # 36 messages


@pytest.mark.slow  # about 90 s; a worker failure and resume is in the default suite for the recommenders (test_train_recommender)
def test_two_workers_lower_the_loss_and_resume_the_schedule_after_a_failure(make_cfg, ray_local):
    cfg = make_cfg("ray.num_workers=2", "training.max_failures=1")
    texts, labels = examples()
    settings = FineTuneSettings(tuple(sorted(INTENTS)), 16)
    tokenizer, _ = load_encoder(None)
    task = FineTuneTask(settings, default_model_path(), tokenize(tokenizer, texts, 16), label_index(settings.labels, labels), 6, seed=3)
    steps = task.steps_per_epoch(2)  # 18 rows per rank, batches of 6
    assert steps == 3
    result = fit(
        cfg, task, "fine-tune-test", 4, lr=3e-4, fail_at_epoch=1,
        optimisation={"weight_decay": 0.01, "warmup_ratio": 0.25, "max_grad_norm": 1.0},
    )  # fmt: skip
    history = result.history
    assert [h["epoch"] for h in history] == [0, 1, 2, 3]
    assert [h["resumed_from"] for h in history] == [None, None, 1, 1]
    assert all(h["examples"] == 36 for h in history) and all(len(h["nodes"]) == 2 for h in history)
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    # The schedule continued across the restart: the rate after each epoch's last step.
    factor = warmup_linear(4 * steps, 0.25)
    assert [h["lr"] for h in history] == pytest.approx([3e-4 * factor(steps * (e + 1)) for e in range(4)])
    state = result.load_state()
    assert "scheduler" in state and set(state["model"]) >= {"head.weight", "head.bias"}
