"""The one place a SparkSession is built.

Under ``spark-submit`` the session's master, resources and jars come from the submit
command; :func:`get_spark` then only adds config keys the command did not set. In
every other case the session is built from ``cfg.spark``.
"""

from __future__ import annotations

import logging
import os
import sys

from shoplake.config import Config

log = logging.getLogger(__name__)

#: The Maven coordinates of the Delta Lake jars that match this PySpark (``spark.jars.packages``, ``--packages``).
DELTA_PACKAGE = "io.delta:delta-spark_4.2_2.13:4.4.0"

DELTA_SESSION_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def launched_by_spark_submit() -> bool:
    """True when this Python driver was started by ``spark-submit`` (the JVM came first)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _delta_jars_requested(conf: dict[str, str]) -> bool:
    jars = " ".join(conf.get(k, "") for k in ("spark.jars.packages", "spark.jars", "spark.driver.extraClassPath"))
    return "delta-spark" in jars or "delta-core" in jars


def get_spark(cfg: Config):
    """Return the active SparkSession, or build one from configuration.

    Args:
        cfg: Loaded configuration; ``cfg.spark`` gives master, app name and settings,
            ``cfg.lake.engine`` decides whether Delta's session extension is enabled.

    Returns:
        A SparkSession with the session time zone set to UTC.
    """
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active

    conf = dict(cfg.spark.conf)
    conf.setdefault("spark.sql.session.timeZone", "UTC")
    if cfg.lake.engine == "delta-spark" or (cfg.lake.engine == "auto" and _delta_jars_requested(conf)):
        for key, value in DELTA_SESSION_CONF.items():
            conf.setdefault(key, value)

    builder = SparkSession.builder
    if launched_by_spark_submit():
        given = dict(SparkConf().getAll())
        if cfg.lake.engine == "auto" and _delta_jars_requested(given):
            for key, value in DELTA_SESSION_CONF.items():
                conf.setdefault(key, value)
        conf = {k: v for k, v in conf.items() if k not in given}
    else:
        master = cfg.spark.master or "local[*]"
        builder = builder.master(master).appName(cfg.spark.app_name)
        if master.startswith("local"):
            # The host name may not resolve to a reachable address in containers.
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # Executors on this host must run the same interpreter (and virtualenv) as the driver.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    log.info("Spark %s session on %s", spark.version, spark.sparkContext.master)
    return spark


def delta_classes_available(spark) -> bool:
    """True when Delta Lake's JVM classes are on this session's classpath."""
    try:
        jvm = spark.sparkContext._jvm
        loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
        jvm.java.lang.Class.forName("io.delta.tables.DeltaTable", False, loader)
        return True
    except Exception:  # noqa: BLE001 - any failure to load means "not available"
        return False
