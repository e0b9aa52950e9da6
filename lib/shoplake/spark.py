"""The one place a SparkSession is built.

Under ``spark-submit`` the session's master, resources and jars come from the submit
command; :func:`get_spark` then only adds config keys the command did not set. In
every other case the session is built from ``cfg.spark``.

Delta Lake's jars. With ``lake.engine`` ``delta-spark`` or ``auto`` the session asks
Maven Central (through Spark's Ivy, cache under ``spark.ivy_dir``) for the Delta
package that matches this PySpark (:data:`DELTA_PACKAGE`), leaving out what PySpark
ships itself (:data:`DELTA_EXCLUDES`), and enables Delta's SQL extension. When the
jars cannot be had (a machine without Maven access) ``auto`` starts the session
without them and says so in the log, and the lake falls back to the ``delta-rs``
engine; ``delta-spark`` stops with the reason.
"""

from __future__ import annotations

import logging
import os
import sys

from shoplake.config import Config
from shoplake.storage import LakeStorage

log = logging.getLogger(__name__)

#: The Maven coordinates of the Delta Lake jars that match this PySpark (``spark.jars.packages``, ``--packages``).
DELTA_PACKAGE = "io.delta:delta-spark_4.2_2.13:4.4.0"

#: Dependencies of the Delta package that PySpark's own jars already provide (a second Hadoop,
#: Parquet or Jackson on the classpath would shadow Spark's); ``spark.jars.excludes``.
DELTA_EXCLUDES = (
    "org.apache.hadoop:hadoop-client-api",
    "org.apache.hadoop:hadoop-client-runtime",
    "org.apache.parquet:parquet-hadoop",
    "org.apache.parquet:parquet-column",
    "org.apache.parquet:parquet-common",
    "org.apache.parquet:parquet-encoding",
    "org.apache.parquet:parquet-format-structures",
    "org.apache.parquet:parquet-jackson",
    "com.fasterxml.jackson.core:jackson-core",
    "com.fasterxml.jackson.core:jackson-databind",
    "com.fasterxml.jackson.core:jackson-annotations",
    "org.apache.logging.log4j:log4j-api",
    "org.apache.logging.log4j:log4j-core",
    "org.apache.logging.log4j:log4j-slf4j2-impl",
    "org.slf4j:slf4j-api",
    "org.xerial.snappy:snappy-java",
    "com.github.luben:zstd-jni",
    "org.roaringbitmap:RoaringBitmap",
    "org.roaringbitmap:shims",
    "commons-logging:commons-logging",
    "com.google.code.findbugs:jsr305",
    "io.airlift:aircompressor",
)

DELTA_SESSION_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}

#: Settings for tables of kilobytes (the test suite's shops): adaptive execution re-plans every stage as a job of its
#: own, whole-stage code generation compiles Java for every plan, and Delta replays its log in 50 partitions and writes
#: a checksum per commit; each costs more than it saves on tiny data and pays off on real data
#: (``bench/spark_settings.py`` measures both).
SMALL_DATA_CONF = {
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.codegen.wholeStage": "false",
    "spark.databricks.delta.snapshotPartitions": "1",
    "spark.databricks.delta.writeChecksumFile.enabled": "false",
}

_JAR_KEYS = ("spark.jars.packages", "spark.jars", "spark.driver.extraClassPath")


class SparkStartError(RuntimeError):
    """Spark could not start as configured; the message says why and what to change."""


def launched_by_spark_submit() -> bool:
    """True when this Python driver was started by ``spark-submit`` (the JVM came first)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _delta_jars_requested(conf: dict[str, str]) -> bool:
    jars = " ".join(conf.get(k, "") for k in _JAR_KEYS)
    return "delta-spark" in jars or "delta-core" in jars


def _join(*parts: str | None) -> str:
    return ",".join(p for part in parts if part for p in part.split(",") if p)


def session_conf(cfg: Config, with_delta: bool) -> dict[str, str]:
    """The settings of a session built from ``cfg.spark`` (not under ``spark-submit``).

    ``spark.packages`` and, ``with_delta``, the Delta package with its exclusions
    and session extension are added to what ``spark.conf`` says; ``spark.ivy_dir``
    becomes ``spark.jars.ivy``. A lake root in an object store adds its Hadoop
    connector and settings (:class:`shoplake.storage.LakeStorage`).
    """
    sc = cfg.spark
    conf = dict(sc.conf)
    conf.setdefault("spark.sql.session.timeZone", "UTC")
    packages = list(sc.packages)
    if with_delta and not _delta_jars_requested(conf):
        packages.insert(0, sc.delta_package or DELTA_PACKAGE)
    storage = LakeStorage.from_config(cfg.lake)
    listed = _join(conf.get("spark.jars.packages"), ",".join(packages))
    for package in storage.spark_packages():
        # A version of the connector named in the configuration wins over the one matching PySpark.
        if package.rsplit(":", 1)[0] + ":" not in listed:
            packages.append(package)
    for key, value in storage.spark_session_conf().items():
        conf.setdefault(key, value)
    if packages:
        conf["spark.jars.packages"] = _join(conf.get("spark.jars.packages"), ",".join(packages))
    if with_delta:
        conf["spark.jars.excludes"] = _join(conf.get("spark.jars.excludes"), ",".join(DELTA_EXCLUDES))
        for key, value in DELTA_SESSION_CONF.items():
            conf.setdefault(key, value)
    if sc.ivy_dir:
        conf.setdefault("spark.jars.ivy", sc.ivy_dir)
    return conf


def submit_args(cfg: Config) -> list[str]:
    """The ``spark-submit`` flags that give a job the jars :func:`get_spark` would fetch itself.

    Under ``spark-submit`` the JVM starts before the job's Python code runs, so the
    Delta package (unless ``lake.engine`` is ``delta-rs``) and ``spark.packages``
    must be on the command line: ``--packages``, ``--exclude-packages`` and the Ivy
    folder. Spark ships the fetched jars to the executors itself.
    """
    conf = session_conf(cfg, with_delta=cfg.lake.engine != "delta-rs")
    args = []
    if conf.get("spark.jars.packages"):
        args += ["--packages", conf["spark.jars.packages"]]
    if conf.get("spark.jars.excludes"):
        args += ["--exclude-packages", conf["spark.jars.excludes"]]
    if conf.get("spark.jars.ivy"):
        args += ["--conf", f"spark.jars.ivy={conf['spark.jars.ivy']}"]
    return args


def _build(cfg: Config, conf: dict[str, str]):
    from pyspark.sql import SparkSession

    master = cfg.spark.master or "local[*]"
    builder = SparkSession.builder.master(master).appName(cfg.spark.app_name)
    if master.startswith("local"):
        # The host name may not resolve to a reachable address in containers.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # Executors on this host must run the same interpreter (and virtualenv) as the driver.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def get_spark(cfg: Config):
    """Return the active SparkSession, or build one from configuration.

    Args:
        cfg: Loaded configuration; ``cfg.spark`` gives master, app name, settings,
            packages and the Ivy folder; ``cfg.lake.engine`` decides whether the
            Delta jars are fetched and Delta's session extension is enabled.

    Returns:
        A SparkSession with the session time zone set to UTC.

    Raises:
        SparkStartError: ``lake.engine`` is ``delta-spark`` and the Delta jars cannot
            be fetched.
    """
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active

    engine = cfg.lake.engine
    if launched_by_spark_submit():
        from pyspark import SparkContext

        # Connect to the JVM spark-submit started first: only then does SparkConf read what the command line gave it.
        SparkContext._ensure_initialized()
        given = dict(SparkConf().getAll())
        conf = dict(cfg.spark.conf)
        conf.setdefault("spark.sql.session.timeZone", "UTC")
        if engine == "delta-spark" or (engine == "auto" and _delta_jars_requested(given)):
            for key, value in DELTA_SESSION_CONF.items():
                conf.setdefault(key, value)
        builder = SparkSession.builder
        for key, value in conf.items():
            if key not in given:
                builder = builder.config(key, value)
        spark = builder.getOrCreate()
    else:
        with_delta = engine in ("delta-spark", "auto")
        try:
            spark = _build(cfg, session_conf(cfg, with_delta))
        except Exception as exc:  # noqa: BLE001 - the JVM exits when Ivy cannot resolve the packages
            if not with_delta:
                raise
            reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            package = cfg.spark.delta_package or DELTA_PACKAGE
            if engine == "delta-spark":
                raise SparkStartError(
                    f"lake.engine is delta-spark but Spark could not start with {package} ({reason}); "
                    "check access to Maven Central (or spark.ivy_dir holding the jars), or set lake.engine=delta-rs"
                ) from exc
            log.warning("Spark could not start with the Delta jars %s (%s): starting without them; the lake uses delta-rs", package, reason)
            fallback = session_conf(cfg, with_delta=False)
            try:
                spark = _build(cfg, fallback)
            except Exception as again:  # noqa: BLE001 - as above: the JVM exits when Ivy cannot resolve the packages
                if not fallback.get("spark.jars.packages"):
                    raise
                raise SparkStartError(
                    f"Spark could not start with the packages {fallback['spark.jars.packages']} "
                    f"(spark.packages, and the Hadoop connector lake.root {cfg.lake.root} needs); "
                    "check access to Maven Central (or spark.ivy_dir holding the jars)"
                ) from again
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
