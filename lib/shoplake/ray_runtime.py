"""The one place ``ray.init`` is called."""

from __future__ import annotations

import logging
import os

from shoplake.config import Config

log = logging.getLogger(__name__)


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
    if rc.runtime_env:
        kwargs["runtime_env"] = rc.runtime_env
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
