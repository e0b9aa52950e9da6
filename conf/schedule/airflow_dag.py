"""Airflow DAG: the shoplake nightly chain, one run per day, each step its own cluster job.

Copy into Airflow's dags folder; ``dist/shoplake.zip`` is the project's wheel
(``pip wheel --no-deps -w dist .``) copied to a ``.zip`` name, which ``--py-files``
puts on the executors' path. Connections: ``spark_default`` (the Spark master) and
the Ray dashboard address in the Airflow variable ``shoplake_ray_dashboard``. The lake
and landing locations come from the workers' environment (SHOPLAKE_LAKE_ROOT,
SHOPLAKE_LANDING_ROOT), as in conf/cluster.yaml. Re-running a day (a backfill or a
clear) replaces that day's output: every step is idempotent per run date.
"""

from __future__ import annotations

import datetime as dt

from airflow import DAG
from airflow.operators.bash import BashOperator
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

PROJECT = "/opt/shoplake"
RUN_DATE = "{{ ds }}"

with DAG(
    dag_id="shoplake_nightly",
    schedule="30 2 * * *",
    start_date=dt.datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=10)},
    tags=["shoplake"],
) as dag:
    ingest = SparkSubmitOperator(
        task_id="ingest",
        application=f"{PROJECT}/jobs/ingest.py",
        py_files=f"{PROJECT}/dist/shoplake.zip",
        application_args=["--env", "cluster", "--run-date", RUN_DATE],
        conn_id="spark_default",
    )
    features = SparkSubmitOperator(
        task_id="build_features",
        application=f"{PROJECT}/jobs/build_features.py",
        py_files=f"{PROJECT}/dist/shoplake.zip",
        # Features as of the morning after the ingested day.
        application_args=["--env", "cluster", "--run-date", "{{ macros.ds_add(ds, 1) }}"],
        conn_id="spark_default",
    )
    profile = BashOperator(
        task_id="profile_tables",
        cwd=PROJECT,
        bash_command=(
            "ray job submit --address {{ var.value.shoplake_ray_dashboard }} --working-dir . "
            "-- python ray_apps/profile_tables.py --env cluster"
        ),
    )
    train = BashOperator(
        task_id="train_recommender",
        cwd=PROJECT,
        bash_command=(
            "ray job submit --address {{ var.value.shoplake_ray_dashboard }} --working-dir . "
            "-- python ray_apps/train_recommender.py --env cluster --run-date {{ macros.ds_add(ds, 1) }}"
        ),
    )
    score = BashOperator(
        task_id="score_recommendations",
        cwd=PROJECT,
        bash_command=(
            "ray job submit --address {{ var.value.shoplake_ray_dashboard }} --working-dir . "
            "-- python ray_apps/score_recommendations.py --env cluster --run-date {{ macros.ds_add(ds, 1) }}"
        ),
    )
    train_fc = BashOperator(
        task_id="train_forecaster",
        cwd=PROJECT,
        bash_command=(
            "ray job submit --address {{ var.value.shoplake_ray_dashboard }} --working-dir . "
            "-- python ray_apps/train_forecaster.py --env cluster --run-date {{ macros.ds_add(ds, 1) }}"
        ),
    )
    score_fc = BashOperator(
        task_id="score_forecasts",
        cwd=PROJECT,
        bash_command=(
            "ray job submit --address {{ var.value.shoplake_ray_dashboard }} --working-dir . "
            "-- python ray_apps/score_forecasts.py --env cluster --run-date {{ macros.ds_add(ds, 1) }}"
        ),
    )
    train_fraud = BashOperator(
        task_id="train_fraud",
        cwd=PROJECT,
        bash_command=(
            "ray job submit --address {{ var.value.shoplake_ray_dashboard }} --working-dir . "
            "-- python ray_apps/train_fraud.py --env cluster --run-date {{ macros.ds_add(ds, 1) }}"
        ),
    )
    score_fraud = BashOperator(
        task_id="score_fraud",
        cwd=PROJECT,
        bash_command=(
            "ray job submit --address {{ var.value.shoplake_ray_dashboard }} --working-dir . "
            "-- python ray_apps/score_fraud.py --env cluster --run-date {{ macros.ds_add(ds, 1) }}"
        ),
    )
    train_support = BashOperator(
        task_id="train_support",
        cwd=PROJECT,
        bash_command=(
            "ray job submit --address {{ var.value.shoplake_ray_dashboard }} --working-dir . "
            "-- python ray_apps/train_text.py --task support --env cluster --run-date {{ macros.ds_add(ds, 1) }}"
        ),
    )
    train_categories = BashOperator(
        task_id="train_categories",
        cwd=PROJECT,
        bash_command=(
            "ray job submit --address {{ var.value.shoplake_ray_dashboard }} --working-dir . "
            "-- python ray_apps/train_text.py --task categorization --env cluster --run-date {{ macros.ds_add(ds, 1) }}"
        ),
    )
    score_categories = BashOperator(
        task_id="score_categories",
        cwd=PROJECT,
        bash_command=(
            "ray job submit --address {{ var.value.shoplake_ray_dashboard }} --working-dir . "
            "-- python ray_apps/score_categories.py --env cluster --run-date {{ macros.ds_add(ds, 1) }}"
        ),
    )
    ingest >> features >> [profile, train, train_fc, train_fraud, train_support, train_categories]
    train >> score
    train_fc >> score_fc
    train_fraud >> score_fraud
    train_categories >> score_categories
