"""The one place ``ray.init`` is called."""

from __future__ import annotations

import logging
import os

from shoplake.config import Config

log = logging.getLogger(__name__)


#: Ray Train's controller poll interval, in seconds (read by the controller actor).
TRAIN_POLL_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"


def init_ray(cfg: Config):
    """Connect to Ray, or start a local instance; calling it again is a no-op.

    With ``ray.address`` unset a local instance starts with ``ray.num_cpus`` CPUs;
    ``auto`` joins the cluster this process runs on (as under ``ray job submit``)
    and ``ray://host:port`` connects a client.

    Args:
        cfg: Loaded configuration; ``cfg.ray`` holds the settings.

    Returns:
        The ``ray`` module, initialised.
    """
    import ray

    if ray.is_initialized():
        return ray
    rc = cfg.ray
    kwargs: dict = {"namespace": rc.namespace, "log_to_driver": True, "ignore_reinit_error": True}
    # The job's processes (Ray Train's controller among them) poll at ray.train_poll_s unless the runtime env says otherwise.
    runtime_env = dict(rc.runtime_env or {})
    runtime_env["env_vars"] = {TRAIN_POLL_ENV: str(rc.train_poll_s), **runtime_env.get("env_vars", {})}
    kwargs["runtime_env"] = runtime_env
    address = rc.address or os.environ.get("RAY_ADDRESS")
    if address:
        kwargs["address"] = address
    else:
        kwargs.update(include_dashboard=rc.include_dashboard, dashboard_host=rc.dashboard_host)
        if rc.num_cpus is not None:
            kwargs["num_cpus"] = rc.num_cpus
    ray.init(**kwargs)
    log.info("Ray %s: %s", ray.__version__, ray.cluster_resources())
    return ray
