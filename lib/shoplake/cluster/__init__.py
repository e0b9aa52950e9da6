"""Local test clusters on one host: a Spark standalone cluster and a multi-node Ray cluster.

:func:`up` starts, on ``cfg.cluster.host`` (127.0.0.1), a Spark standalone master with
``cluster.spark_workers`` workers and a Ray head with one extra Ray node per entry of
``cluster.ray_worker_nodes``, each as its own process group with its output in
``<run_dir>/logs/<name>.log``, and records them in ``<run_dir>/cluster.json``.
:func:`down` stops exactly what was recorded (never ``ray stop`` or a kill by process
name, so other Spark or Ray processes on the machine are left alone), and
:func:`status` says what is recorded and what still runs.

Jobs reach these clusters the way they reach real ones: ``spark-submit --master
spark://...`` with the package shipped as ``--py-files`` (:func:`build_wheel`,
:func:`spark_submit_argv`) and ``ray job submit`` to the dashboard
(:func:`ray_job_submit_argv`); :func:`submit_env` is the environment for both.

The Ray cluster uses token authentication with its own token in
``<run_dir>/ray-auth-token``; clients find it through ``RAY_AUTH_TOKEN_PATH``
(:func:`submit_env`). Ray registers its nodes under the host's network address even
when told 127.0.0.1; every port it is given still listens there.

The package by part: :mod:`.state` (the record), :mod:`.processes` (what runs, and
stopping it, with psutil), :mod:`.commands` (folders, addresses, ports, command
lines), :mod:`.launch` (``up``, ``down``, ``status``) and :mod:`.jobs` (shipping the
package, ``spark-submit`` and ``ray job submit`` lines, Ray's ``JobSubmissionClient``).
Its public names are importable from ``shoplake.cluster`` itself.
"""

from shoplake.cluster.commands import (
    RAY_NODE_PORTS,
    RAY_TOKEN_FILE,
    RAY_WORKER_PORT_RANGE,
    check_ports_free,
    configured_ports,
    free_ports,
    memory_mib,
    port_in_use,
    ray_dashboard_url,
    ray_gcs_address,
    ray_head_command,
    ray_temp_dir,
    ray_token,
    ray_token_path,
    ray_worker_command,
    spark_home,
    spark_master_command,
    spark_master_ui,
    spark_master_url,
    spark_worker_command,
    validate_ports,
)
from shoplake.cluster.jobs import build_wheel, py_files_archive, ray_job_info, ray_job_submit_argv, ray_jobs, spark_submit_argv, submit_env
from shoplake.cluster.launch import down, http_json, ray_alive_nodes, ray_dashboard_json, spark_master_info, status, up
from shoplake.cluster.processes import ROLES, ProcessRecord, is_ours, pid_alive, process_tree, start_time, stop_processes
from shoplake.cluster.state import STATE_FILE, ClusterError, ClusterState, load_state, save_state, state_path

__all__ = [
    "ClusterError",
    "ClusterState",
    "ProcessRecord",
    "RAY_NODE_PORTS",
    "RAY_TOKEN_FILE",
    "RAY_WORKER_PORT_RANGE",
    "ROLES",
    "STATE_FILE",
    "build_wheel",
    "check_ports_free",
    "configured_ports",
    "down",
    "free_ports",
    "http_json",
    "is_ours",
    "load_state",
    "memory_mib",
    "pid_alive",
    "port_in_use",
    "process_tree",
    "py_files_archive",
    "ray_alive_nodes",
    "ray_dashboard_json",
    "ray_dashboard_url",
    "ray_gcs_address",
    "ray_head_command",
    "ray_job_info",
    "ray_job_submit_argv",
    "ray_jobs",
    "ray_temp_dir",
    "ray_token",
    "ray_token_path",
    "ray_worker_command",
    "save_state",
    "spark_home",
    "spark_master_command",
    "spark_master_info",
    "spark_master_ui",
    "spark_master_url",
    "spark_submit_argv",
    "spark_worker_command",
    "start_time",
    "state_path",
    "status",
    "stop_processes",
    "submit_env",
    "up",
    "validate_ports",
]
