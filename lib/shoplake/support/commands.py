"""The entry point of customer service: ``train`` (``shoplake train-support``, ``python ray_apps/train.py support``)."""

from __future__ import annotations

TRAIN_DOC = """Fine-tune, compare and register the support intent models.

Inputs:  gold.support_training of --run-date D (default: the latest partition), with its
         stable train / validation / test split.
Outputs: every model of support.models (tfidf_lr: TF-IDF + logistic regression,
         frozen_lr: logistic regression on the pretrained encoder's embeddings,
         fine_tuned: the encoder with a classification head fine-tuned on Ray Train with
         the fine_tuning.* settings) trained on the train split; accuracy and macro-F1
         on validation and test to ops.model_metrics (task support, D's rows replaced),
         printed as a table. Messages of support.out_of_scope_intents are never trained
         on; they test the hand-off, whose threshold is the lowest confidence that hands
         support.min_handoff of the out-of-scope validation messages to a person,
         capped where support.min_answered of the in-scope ones are answered. The bundle
         carries the answers (the train split's messages with a resolution, embedded
         by the champion). The champion (best validation macro-F1) is saved under
         <runs_dir>/support/<name>/bundle, logged to MLflow and registered as
         support.registered_model with the serving alias.
Parameters: --run-date, --name (run folder prefix), --no-register, --env,
         --set key=value (support.*, fine_tuning.*, text_encoder.model_path, ray.num_workers).

    python ray_apps/train.py support --env local --run-date 2024-03-31
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        python ray_apps/train.py support --env cluster --set fine_tuning.epochs=4
"""


def train(argv: list[str] | None = None) -> int:
    from shoplake.support.train import run_support
    from shoplake.text.commands import train_parser, train_text

    return train_text(argv, train_parser("train.py support", TRAIN_DOC, "gold.support_training"), run_support, "support")
