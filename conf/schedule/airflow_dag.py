"""Airflow DAG: the shoplake nightly chain, one run per day, one task per declared step.

The tasks and their order come from :mod:`shoplake.pipeline` (the same steps that
``shoplake nightly`` runs and ``conf/schedule/nightly.sh`` submits): each task runs the
step's ``spark-submit`` or ``ray job submit`` line, after the steps it depends on, so
the use cases' training runs go in parallel once the features are built.

Copy into Airflow's dags folder on workers that have shoplake installed;
``dist/shoplake.zip`` is the project's wheel (``pip wheel --no-deps -w dist .``) copied
to a ``.zip`` name, which ``--py-files`` puts on the executors' path. The Spark master
and the Ray dashboard come from the Airflow variables ``shoplake_spark_master`` and
``shoplake_ray_dashboard``; the lake and landing locations from the workers'
environment (SHOPLAKE_LAKE_ROOT, SHOPLAKE_LANDING_ROOT), as in lib/shoplake/conf/cluster.yaml.
Re-running a day (a backfill or a clear) replaces that day's output: every step is
idempotent per run date.
"""

from __future__ import annotations

import datetime as dt

from airflow import DAG
from airflow.operators.bash import BashOperator

from shoplake.config import load_config
from shoplake.pipeline import command_line, steps
from shoplake.spark import submit_args

PROJECT = "/opt/shoplake"
#: Airflow's templates for the dates of :func:`shoplake.pipeline.step_date`.
DATES = {"landing": "{{ ds }}", "features": "{{ macros.ds_add(ds, 1) }}", "none": None}
#: The jars the Spark jobs need (the Delta package), as the cluster configuration says.
SPARK_ARGS = submit_args(load_config("cluster"))

ENV = {
    "SPARK_MASTER_URL": "{{ var.value.shoplake_spark_master }}",
    "RAY_DASHBOARD": "{{ var.value.shoplake_ray_dashboard }}",
    "SHOPLAKE_WHEEL": f"{PROJECT}/dist/shoplake.zip",
    "SHOPLAKE_RUNTIME_ENV": '{"env_vars": {"SHOPLAKE_LAKE_ROOT": "{{ var.value.shoplake_lake_root }}"}}',
}

with DAG(
    dag_id="shoplake_nightly",
    schedule="30 2 * * *",
    start_date=dt.datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=10)},
    tags=["shoplake"],
) as dag:
    tasks = {}
    for step in steps():
        tasks[step.name] = BashOperator(
            task_id=step.name.replace("-", "_"),
            cwd=PROJECT,
            bash_command=command_line(step, DATES[step.runs_for], spark_args=SPARK_ARGS),
            env=ENV,
            append_env=True,
        )
        for before in step.after:
            tasks[before] >> tasks[step.name]
