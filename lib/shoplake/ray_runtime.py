"""The one place ``ray.init`` is called."""

from __future__ import annotations

import logging
import os

from shoplake.config import Config

log = logging.getLogger(__name__)


#: Ray Train's controller poll interval, in seconds (read by the controller actor).
TRAIN_POLL_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
#: Serve's HAProxy ingress, on or off (read by Serve's controller and replicas when they start).
HAPROXY_ENV = "RAY_SERVE_ENABLE_HA_PROXY"
#: How long a stopping replica of the HAProxy ingress keeps answering, in seconds.
DRAIN_ENV = "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"


def serve_environment(cfg: Config) -> dict[str, str]:
    """Environment variables of Ray's processes that choose Serve's HTTP ingress (``serve.ingress``, ``serve.drain_s``).

    Serve reads them when its controller and replicas start, so they belong in the
    environment of the Ray nodes: :func:`init_ray` sets them for a local instance,
    ``shoplake cluster up`` for its nodes; a cluster started otherwise needs them in its own.
    """
    sc = cfg.serve
    return {HAPROXY_ENV: "1" if sc.ingress == "haproxy" else "0", DRAIN_ENV: f"{sc.drain_s:g}"}


def init_ray(cfg: Config):
    """Connect to Ray, or start a local instance; calling it again is a no-op.

    With ``ray.address`` unset a local instance starts with ``ray.num_cpus`` CPUs and
    Serve's ingress settings (:func:`serve_environment`, set in this process's
    environment, which the instance's processes inherit); ``auto`` joins the cluster
    this process runs on (as under ``ray job submit``) and ``ray://host:port``
    connects a client.

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
        os.environ.update(serve_environment(cfg))
        if rc.num_cpus is not None:
            kwargs["num_cpus"] = rc.num_cpus
    ray.init(**kwargs)
    log.info("Ray %s: %s", ray.__version__, ray.cluster_resources())
    return ray
