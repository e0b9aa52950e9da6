"""Fine-tune, compare and register the support intent or product category models.

Inputs:  --task support: gold.support_training; --task categorization: gold.product_text;
         of --run-date D (default: the latest partition), with their stable
         train / validation / test split.
Outputs: every model of <task>.models (tfidf_lr: TF-IDF + logistic regression,
         frozen_lr: logistic regression on the pretrained encoder's embeddings,
         fine_tuned: the encoder with a classification head fine-tuned on Ray Train with
         the fine_tuning.* settings) trained on the train split; accuracy and macro-F1
         on validation and test to ops.model_metrics (task support or categorization,
         D's rows replaced), printed as a table.
         support: messages of support.out_of_scope_intents are never trained on; they
         test the hand-off, whose threshold is the lowest confidence that hands
         support.min_handoff of the out-of-scope validation messages to a person,
         capped where support.min_answered of the in-scope ones are answered. The bundle
         carries the answers (the train split's messages with a resolution, embedded
         by the champion).
         categorization: products without a category are not used;
         categorization.max_train_rows caps the training rows (a random sample).
         The champion (best validation macro-F1) is saved under
         <runs_dir>/<task>/<name>/bundle, logged to MLflow and registered as
         <task>.registered_model with the serving alias.
Parameters: --task, --run-date, --name (run folder prefix), --no-register, --env,
         --set key=value (support.*, categorization.*, fine_tuning.*,
         text_encoder.model_path, ray.num_workers).

    python ray_apps/train_text.py --task support --env local --run-date 2024-03-31
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        python ray_apps/train_text.py --task categorization --env cluster --set fine_tuning.epochs=4
"""

from __future__ import annotations

import argparse

from shoplake.entry import add_config_args, config_from_args, exit_cleanly, parse_date


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train_text", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser)
    parser.add_argument("--task", required=True, choices=["support", "categorization"], help="which models to train")
    parser.add_argument("--run-date", type=parse_date, help="features date (default: the latest in the task's table)")
    parser.add_argument("--name", help="prefix of the run's folders (default: <task>_<run date>_<time>)")
    parser.add_argument("--no-register", action="store_true", help="do not log to MLflow or move the serving alias")
    return parser


def main(argv: list[str] | None = None) -> int:
    import datetime as dt

    from rich.console import Console

    from shoplake.lake import Lake
    from shoplake.ray_runtime import init_ray
    from shoplake.reports import text_metrics_table, text_run_lines
    from shoplake.training.text import MissingTextTableError, TooFewTextsError, metrics_rows, run_categorization, run_support

    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    console = Console()
    init_ray(cfg)
    try:
        run = run_support if args.task == "support" else run_categorization
        with console.status(f"{args.task} run") as status:
            result = run(
                cfg, Lake(cfg), args.run_date, name=args.name, register=not args.no_register,
                on_step=lambda text: status.update(f"{args.task} run: {text}"),
            )  # fmt: skip
    except (MissingTextTableError, TooFewTextsError) as exc:
        console.print(f"error: {exc}")
        return 2
    console.print(text_metrics_table(metrics_rows(result, dt.datetime.now(dt.timezone.utc)), result.task))
    for line in text_run_lines(result):
        console.print(line)
    return 0


if __name__ == "__main__":
    exit_cleanly(main)
