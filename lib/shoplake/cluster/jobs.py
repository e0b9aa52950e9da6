"""Jobs on the local clusters: the package shipped to them, ``spark-submit`` and ``ray job submit`` command lines, job status."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from shoplake.cluster.commands import (
    _tool,
    _venv_bin,
    memory_mib,
    ray_dashboard_url,
    ray_token,
    ray_token_path,
    spark_home,
    spark_master_url,
)
from shoplake.cluster.state import ClusterError
from shoplake.config import Config
from shoplake.spark import submit_args

log = logging.getLogger(__name__)


_PROJECT_FILES = ("pyproject.toml", "setup.cfg", "setup.py", "MANIFEST.in", "README.md", "README.rst", "LICENSE", "LICENSE.txt")


def build_wheel(cfg: Config) -> Path:
    """Build the ``shoplake`` wheel into ``<run_dir>/dist`` (offline, no build isolation).

    The project is copied to ``<run_dir>/wheel-src`` first so that the build leaves
    the checkout untouched (no ``build/`` or ``*.egg-info`` there). When pip cannot
    build a wheel (no setuptools in the environment), a zip of ``lib/shoplake`` is
    made instead; both work with :func:`spark_submit_argv`.

    Returns:
        The wheel (or zip) path.
    """
    root = Path(cfg.project_root)
    run_dir = Path(cfg.cluster.run_dir)
    dist, stage = run_dir / "dist", run_dir / "wheel-src"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    dist.mkdir(parents=True, exist_ok=True)
    for old in [*dist.glob("shoplake-*.whl"), *dist.glob("shoplake-*.zip")]:
        old.unlink()
    for name in _PROJECT_FILES:
        if (root / name).is_file():
            shutil.copy2(root / name, stage / name)
    shutil.copytree(root / "lib", stage / "lib", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(dist), str(stage)]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    wheels = sorted(dist.glob("shoplake-*.whl"))
    if proc.returncode == 0 and wheels:
        log.info("built %s in %.1f s", wheels[-1], time.monotonic() - started)
        return wheels[-1]
    log.warning("pip could not build the wheel (%s); shipping a zip of lib/shoplake instead", proc.stderr.strip()[-500:])
    return _zip_package(root / "lib" / "shoplake", dist / "shoplake-src.zip")


def _zip_package(package: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(package.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                zf.write(path, Path(package.name) / path.relative_to(package))
    return target


def py_files_archive(package: str | Path) -> Path:
    """A path that ``--py-files`` puts on the executors' ``sys.path``.

    PySpark adds only ``.zip``, ``.egg`` and ``.jar`` files to it, so a wheel (a zip
    archive with the package at its root) is shipped as a ``.zip`` copy beside it.
    """
    path = Path(package)
    if path.suffix != ".whl":
        return path
    target = path.with_suffix(".zip")
    if not target.is_file() or target.stat().st_mtime < path.stat().st_mtime:
        shutil.copy2(path, target)
    return target


def submit_env(cfg: Config, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for ``spark-submit`` and ``ray job submit`` against the local clusters.

    Sets the cluster addresses (``SPARK_MASTER_URL``; ``RAY_ADDRESS`` as the dashboard
    URL, which is what job submission and ``serve deploy`` take), the Ray token
    (``RAY_AUTH_MODE``, ``RAY_AUTH_TOKEN_PATH``), ``PYSPARK_PYTHON``, ``SPARK_LOCAL_IP``
    and ``SHOPLAKE_CONF_DIR`` (the folder of this configuration: a driver imports the
    shipped package from an archive, where files cannot be read as paths). ``SHOPLAKE_LAKE_ROOT`` and ``SHOPLAKE_LANDING_ROOT`` are left
    to the caller.

    Args:
        cfg: Configuration.
        base: Environment to start from (default: this process's).
    """
    env = dict(os.environ if base is None else base)
    for key in ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET"):
        env.pop(key, None)
    env["PATH"] = os.pathsep.join([str(_venv_bin()), env.get("PATH", "")])
    env.update(
        SPARK_HOME=str(spark_home()),
        SPARK_MASTER_URL=spark_master_url(cfg),
        SPARK_LOCAL_IP=cfg.cluster.host,
        PYSPARK_PYTHON=sys.executable,
        RAY_ADDRESS=ray_dashboard_url(cfg),
        SHOPLAKE_CONF_DIR=cfg.conf_dir,
    )
    if ray_token_path(cfg).is_file():
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(ray_token_path(cfg)))
    return env


def _entry_script(cfg: Config, script: str | Path) -> Path:
    path = Path(script)
    if len(path.parts) == 1 and path.suffix == "":
        path = Path("jobs") / f"{path}.py"
    if not path.is_absolute():
        path = Path(cfg.project_root) / path
    if not path.is_file():
        raise ClusterError(f"entry point {path} not found")
    return path


def spark_submit_argv(
    cfg: Config,
    script: str | Path,
    args: list[str] | tuple[str, ...] = (),
    py_files: str | Path | None = None,
    conf: dict[str, str] | None = None,
    env_name: str = "cluster",
) -> list[str]:
    """The ``spark-submit`` command line of a job on the local Spark cluster.

    Args:
        cfg: Configuration; ``cfg.cluster`` gives the master and the executor sizes.
        script: ``jobs/ingest.py``, a path, or a job name (``ingest``).
        args: Arguments after ``--env <env_name>`` (``--from``, ``--set`` ...).
        py_files: The package to ship (:func:`build_wheel`); None ships nothing.
        conf: Extra ``--conf`` settings.
        env_name: The job's ``--env``.

    Returns:
        The argv, one executor of one core per worker core.
    """
    cc = cfg.cluster
    executor_mib = max(memory_mib(cc.spark_worker_memory) // cc.spark_worker_cores, 512)
    settings = {
        "spark.executor.cores": "1",
        "spark.cores.max": str(cc.spark_workers * cc.spark_worker_cores),
        "spark.executor.memory": f"{executor_mib}m",
        **(conf or {}),
    }
    argv = [str(spark_home() / "bin" / "spark-submit"), "--master", spark_master_url(cfg), *submit_args(cfg)]
    if py_files is not None:
        argv += ["--py-files", str(py_files_archive(py_files))]
    for key, value in settings.items():
        argv += ["--conf", f"{key}={value}"]
    return [*argv, str(_entry_script(cfg, script)), "--env", env_name, *args]


def ray_job_submit_argv(
    cfg: Config,
    entrypoint: list[str],
    working_dir: str | Path | None = None,
    env_vars: dict[str, str] | None = None,
    py_modules: list[str | Path] | None = None,
    submission_id: str | None = None,
) -> list[str]:
    """The ``ray job submit`` command line of an entry point on the local Ray cluster.

    Args:
        cfg: Configuration.
        entrypoint: The command the job runs (``["python", "ray_apps/x.py", "--env", "cluster"]``).
        working_dir: Uploaded and made the job's current folder (default: the project root).
        env_vars: Environment variables of the job and its workers.
        py_modules: Packages shipped to the job and its workers (default: ``lib/shoplake``).
        submission_id: A chosen job id, to look the job up later.
    """
    root = Path(cfg.project_root)
    modules = py_modules if py_modules is not None else [root / "lib" / "shoplake"]
    runtime_env: dict = {"working_dir": str(working_dir or root)}
    if modules:
        runtime_env["py_modules"] = [str(m) for m in modules]
    if env_vars:
        runtime_env["env_vars"] = dict(env_vars)
    argv = [_tool("ray"), "job", "submit", "--address", ray_dashboard_url(cfg), "--runtime-env-json", json.dumps(runtime_env)]
    if submission_id:
        argv += ["--submission-id", submission_id]
    return [*argv, "--", *entrypoint]


def ray_jobs(cfg: Config):
    """Ray's :class:`~ray.job_submission.JobSubmissionClient` for the local Ray cluster, with its token.

    Raises:
        ConnectionError: The dashboard does not answer.
    """
    from ray.job_submission import JobSubmissionClient

    token = ray_token(cfg)
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return JobSubmissionClient(ray_dashboard_url(cfg), headers=headers)


def ray_job_info(cfg: Config, submission_id: str) -> dict | None:
    """A submitted job's record (``status``, ``message``, ``entrypoint``, ...); None when the cluster or the job is unknown."""
    try:
        info = ray_jobs(cfg).get_job_info(submission_id)
    except (ConnectionError, RuntimeError):
        return None
    out = info.model_dump() if hasattr(info, "model_dump") else info.dict()
    out["status"] = str(getattr(info.status, "value", info.status))
    return out
