"""Object storage: what the lake root and ``lake.storage_options`` mean to each engine.

The lake root is one URI: a folder, ``s3://bucket/lake`` (AWS S3 or any S3-compatible
server) or ``abfss://container@account.dfs.core.windows.net/lake`` (Azure Data Lake
Storage Gen2). ``lake.storage_options`` holds the store's settings under delta-rs's
names (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AZURE_STORAGE_ACCOUNT_KEY``, ...),
written in the configuration as ``${ENV}`` references; a setting it leaves out is
taken from the environment variable of the same name. Credentials never live in code.

This module is the one place that turns those settings into what each engine needs:

- delta-rs, Ray Data and the run manifest: the settings themselves
  (:attr:`LakeStorage.options`);
- pyarrow, for the data files the delta-rs engine writes from Spark and Ray tasks and
  for recovery's listings: :func:`pyarrow_filesystem`;
- Spark: the Maven package of the Hadoop connector that matches PySpark's Hadoop
  (:meth:`LakeStorage.spark_packages`), its ``fs.s3a.*`` / ``fs.azure.*`` settings
  scoped to the lake's bucket or account (:meth:`LakeStorage.hadoop_conf`), and the
  URI scheme Hadoop knows the store by: ``s3a://`` for ``s3://`` (:func:`spark_uri`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlparse

if TYPE_CHECKING:
    from shoplake.config import LakeConfig

#: Hadoop of the jars PySpark 4.2 ships (``pyspark/jars/hadoop-client-api-3.5.0.jar``); its connectors must match it.
HADOOP_VERSION = "3.5.0"
#: The S3A connector (``s3a://``); it brings the AWS SDK v2 bundle (``software.amazon.awssdk:bundle``, about 650 MiB).
HADOOP_AWS_PACKAGE = f"org.apache.hadoop:hadoop-aws:{HADOOP_VERSION}"
#: The ABFS connector (``abfss://``).
HADOOP_AZURE_PACKAGE = f"org.apache.hadoop:hadoop-azure:{HADOOP_VERSION}"

S3_SCHEMES = ("s3", "s3a")
AZURE_SCHEMES = ("abfss", "abfs")

#: Delta's log store for ``s3a://``: its default, named so the choice is visible. It makes
#: commits from one Spark driver safe (writers in that JVM take turns); shoplake's Spark
#: steps each write their tables from one driver, one step at a time.
S3_LOG_STORE = "io.delta.storage.S3SingleDriverLogStore"

_S3_KEYS = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_ALLOW_HTTP")
_AZURE_KEYS = (
    "AZURE_STORAGE_ACCOUNT_NAME",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_TENANT_ID",
)
#: Per scheme: the Hadoop file system class Spark opens it with, and the package that brings it.
_CONNECTORS = {
    **dict.fromkeys(S3_SCHEMES, ("org.apache.hadoop.fs.s3a.S3AFileSystem", HADOOP_AWS_PACKAGE)),
    **dict.fromkeys(AZURE_SCHEMES, ("org.apache.hadoop.fs.azurebfs.SecureAzureBlobFileSystem", HADOOP_AZURE_PACKAGE)),
}


def scheme_of(uri: str) -> str:
    """The URI's scheme in lower case; ``""`` for a plain path."""
    return urlparse(uri).scheme.lower() if "://" in uri else ""


def is_s3(uri: str) -> bool:
    return scheme_of(uri) in S3_SCHEMES


def is_azure(uri: str) -> bool:
    return scheme_of(uri) in AZURE_SCHEMES


def spark_uri(uri: str) -> str:
    """The URI as Spark's Hadoop file systems know it: ``s3://`` becomes ``s3a://`` (the S3A connector); others unchanged."""
    if scheme_of(uri) == "s3":
        return "s3a://" + uri.split("://", 1)[1]
    return uri


def _azure_account(uri: str) -> tuple[str, str]:
    """``(container, account)`` of an ``abfss://container@account.dfs.core.windows.net/...`` URI."""
    netloc = urlparse(uri).netloc
    container, _, host = netloc.partition("@")
    return container, host.split(".", 1)[0]


def _upper(options: Mapping[str, str]) -> dict[str, str]:
    # delta-rs takes its keys in either case; one case here makes lookups and overrides exact.
    return {k.upper(): str(v) for k, v in options.items()}


def _truthy(value: str | None) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class LakeStorage:
    """The lake's store: its root and the settings every engine derives from.

    Attributes:
        root: The lake root.
        options: The storage options delta-rs, pyarrow and Ray get (config first,
            then the environment); None for a local root without any.
        ambient: Credentials come from the machine (``lake.ambient_credentials``).
    """

    root: str
    options: dict[str, str] | None
    ambient: bool = False
    _missing: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def from_config(cls, lake: LakeConfig, environ: Mapping[str, str] | None = None) -> LakeStorage:
        """Resolve ``lake.storage_options`` for ``lake.root``, filling what they leave out from the environment.

        Args:
            lake: The lake's configuration.
            environ: The environment (default ``os.environ``).

        Returns:
            The lake's storage. Nothing is checked yet: :meth:`check` says whether
            the credentials are there.
        """
        environ = os.environ if environ is None else environ
        given = _upper(lake.storage_options)
        if is_s3(lake.root):
            options = {k: environ[k] for k in _S3_KEYS if environ.get(k)}
            if "AWS_REGION" not in options and environ.get("AWS_DEFAULT_REGION"):
                options["AWS_REGION"] = environ["AWS_DEFAULT_REGION"]
            options.update(given)
            # An endpoint written as http:// is a deliberate plain-HTTP server (a local or in-cluster
            # S3-compatible one); delta-rs refuses it unless told so.
            if options.get("AWS_ENDPOINT_URL", "").lower().startswith("http://"):
                options.setdefault("AWS_ALLOW_HTTP", "true")
            missing = () if lake.ambient_credentials else _s3_missing(options)
        elif is_azure(lake.root):
            options = {k: environ[k] for k in _AZURE_KEYS if environ.get(k)}
            options.update(given)
            options.setdefault("AZURE_STORAGE_ACCOUNT_NAME", _azure_account(lake.root)[1])
            missing = () if lake.ambient_credentials else _azure_missing(options)
        else:
            options, missing = given, ()
        return cls(lake.root, options or None, lake.ambient_credentials, missing)

    @property
    def scheme(self) -> str:
        return scheme_of(self.root)

    def check(self) -> None:
        """Stop with a clear error when the root is in an object store and its credentials are missing.

        Raises:
            shoplake.config.ConfigError: Names the settings (and environment variables) to set.
        """
        from shoplake.config import ConfigError

        if not self._missing:
            return
        keys = " and ".join(f"lake.storage_options.{k}" for k in self._missing)
        env = " and ".join(self._missing)
        raise ConfigError(
            f"lake.root {self.root} needs credentials: set {keys} (as ${{ENV}} references) or the environment "
            f"variable(s) {env}, or lake.ambient_credentials=true where the machine provides them (an instance role)"
        )

    def spark_packages(self) -> list[str]:
        """The Hadoop connector Spark needs for this root (none for a folder)."""
        return [_CONNECTORS[self.scheme][1]] if self.scheme in _CONNECTORS else []

    def hadoop_conf(self) -> dict[str, str]:
        """Hadoop settings for the lake's bucket or account, from the storage options.

        S3: ``fs.s3a.bucket.<bucket>.*`` (per-bucket settings win over global ones,
        so other buckets keep theirs): endpoint, path-style access and SSL for a
        custom endpoint, region, and the keys with the credentials provider that
        reads them. Azure: ``fs.azure.*.<account>.dfs.core.windows.net``: an account
        key, a SAS token, or a service principal (OAuth client credentials).
        """
        opts = self.options or {}
        if is_s3(self.root):
            return _s3a_conf(urlparse(self.root).netloc, opts, self.ambient)
        if is_azure(self.root):
            return _abfs_conf(_azure_account(self.root)[1], opts)
        return {}

    def spark_session_conf(self) -> dict[str, str]:
        """What a session built for this lake adds to its settings: ``spark.hadoop.*`` and Delta's S3 log store."""
        conf = {f"spark.hadoop.{k}": v for k, v in self.hadoop_conf().items()}
        if is_s3(self.root):
            conf["spark.delta.logStore.s3a.impl"] = S3_LOG_STORE
        return conf

    def apply_to_spark(self, spark) -> None:
        """Set :meth:`hadoop_conf` on a running session (one built elsewhere, or by ``spark-submit``).

        Spark ships the driver's Hadoop settings with every file scan and write, so
        executors see them too.
        """
        conf = self.hadoop_conf()
        if not conf:
            return
        hadoop = spark.sparkContext._jsc.hadoopConfiguration()
        for key, value in conf.items():
            hadoop.set(key, value)

    def check_spark(self, spark) -> None:
        """Stop with a clear error when the session cannot open the root (its Hadoop connector is not on the classpath).

        Raises:
            shoplake.config.ConfigError: Names the package to add.
        """
        from shoplake.config import ConfigError

        if self.scheme not in _CONNECTORS:
            return
        cls, package = _CONNECTORS[self.scheme]
        if not jvm_class_available(spark, cls):
            raise ConfigError(
                f"lake.root {self.root} needs Hadoop's {self.scheme} connector, which this Spark session lacks: "
                f"add {package} to spark.packages (spark-submit: --packages {package})"
            )


def _s3_missing(options: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(k for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not options.get(k))


def _azure_missing(options: Mapping[str, str]) -> tuple[str, ...]:
    if options.get("AZURE_STORAGE_ACCOUNT_KEY") or options.get("AZURE_STORAGE_SAS_KEY"):
        return ()
    principal = ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID")
    if any(options.get(k) for k in principal):
        return tuple(k for k in principal if not options.get(k))
    return ("AZURE_STORAGE_ACCOUNT_KEY",)


def _s3a_conf(bucket: str, opts: Mapping[str, str], ambient: bool) -> dict[str, str]:
    prefix = f"fs.s3a.bucket.{bucket}."
    conf: dict[str, str] = {}
    endpoint = opts.get("AWS_ENDPOINT_URL")
    if endpoint:
        conf[prefix + "endpoint"] = endpoint
        conf[prefix + "connection.ssl.enabled"] = "false" if endpoint.lower().startswith("http://") else "true"
        # S3-compatible servers address buckets by path, as delta-rs and pyarrow do by default.
        conf[prefix + "path.style.access"] = "false" if _truthy(opts.get("AWS_VIRTUAL_HOSTED_STYLE_REQUEST")) else "true"
    if opts.get("AWS_REGION"):
        conf[prefix + "endpoint.region"] = opts["AWS_REGION"]
    if not ambient and opts.get("AWS_ACCESS_KEY_ID"):
        conf[prefix + "access.key"] = opts["AWS_ACCESS_KEY_ID"]
        conf[prefix + "secret.key"] = opts.get("AWS_SECRET_ACCESS_KEY", "")
        if opts.get("AWS_SESSION_TOKEN"):
            conf[prefix + "session.token"] = opts["AWS_SESSION_TOKEN"]
            conf[prefix + "aws.credentials.provider"] = "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"
        else:
            conf[prefix + "aws.credentials.provider"] = "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
    return conf


def _abfs_conf(account: str, opts: Mapping[str, str]) -> dict[str, str]:
    host = f"{account}.dfs.core.windows.net"
    if opts.get("AZURE_STORAGE_ACCOUNT_KEY"):
        return {f"fs.azure.account.key.{host}": opts["AZURE_STORAGE_ACCOUNT_KEY"]}
    if opts.get("AZURE_STORAGE_SAS_KEY"):
        return {
            f"fs.azure.account.auth.type.{host}": "SAS",
            f"fs.azure.sas.fixed.token.{host}": opts["AZURE_STORAGE_SAS_KEY"].lstrip("?"),
        }
    if opts.get("AZURE_CLIENT_ID") and opts.get("AZURE_CLIENT_SECRET") and opts.get("AZURE_TENANT_ID"):
        return {
            f"fs.azure.account.auth.type.{host}": "OAuth",
            f"fs.azure.account.oauth.provider.type.{host}": "org.apache.hadoop.fs.azurebfs.oauth2.ClientCredsTokenProvider",
            f"fs.azure.account.oauth2.client.id.{host}": opts["AZURE_CLIENT_ID"],
            f"fs.azure.account.oauth2.client.secret.{host}": opts["AZURE_CLIENT_SECRET"],
            f"fs.azure.account.oauth2.client.endpoint.{host}": f"https://login.microsoftonline.com/{opts['AZURE_TENANT_ID']}/oauth2/token",
        }
    return {}


def pyarrow_filesystem(uri: str, options: Mapping[str, str] | None = None):
    """A pyarrow filesystem and the path inside it for a folder or an object-store URI.

    ``s3://`` (and ``s3a://``) with storage options: an ``S3FileSystem`` with their
    keys, region and endpoint (``http://`` endpoints included). ``abfss://`` with
    storage options: an ``AzureFileSystem`` for the account. Without options, or for
    other schemes, pyarrow's own resolution (environment credentials).

    Returns:
        ``(filesystem, path)``.
    """
    import pyarrow.fs as pafs

    scheme = scheme_of(uri)
    if not scheme:
        return pafs.LocalFileSystem(), uri
    parsed = urlparse(uri)
    if scheme == "file":
        return pafs.LocalFileSystem(), parsed.path
    opts = _upper(options or {})
    if scheme in S3_SCHEMES and opts:
        fs = pafs.S3FileSystem(
            access_key=opts.get("AWS_ACCESS_KEY_ID"),
            secret_key=opts.get("AWS_SECRET_ACCESS_KEY"),
            session_token=opts.get("AWS_SESSION_TOKEN"),
            region=opts.get("AWS_REGION"),
            # pyarrow takes the scheme (http or https) from the endpoint itself.
            endpoint_override=opts.get("AWS_ENDPOINT_URL"),
            force_virtual_addressing=_truthy(opts.get("AWS_VIRTUAL_HOSTED_STYLE_REQUEST")),
        )
        return fs, f"{parsed.netloc}{parsed.path}"
    if scheme in AZURE_SCHEMES and opts:
        container, account = _azure_account(uri)
        fs = pafs.AzureFileSystem(
            account_name=opts.get("AZURE_STORAGE_ACCOUNT_NAME", account),
            account_key=opts.get("AZURE_STORAGE_ACCOUNT_KEY"),
            sas_token=opts.get("AZURE_STORAGE_SAS_KEY"),
            client_id=opts.get("AZURE_CLIENT_ID"),
            client_secret=opts.get("AZURE_CLIENT_SECRET"),
            tenant_id=opts.get("AZURE_TENANT_ID"),
        )
        return fs, f"{container}{parsed.path}"
    if scheme == "s3a":
        uri = "s3://" + uri.split("://", 1)[1]
    return pafs.FileSystem.from_uri(uri)


def jvm_class_available(spark, name: str) -> bool:
    """True when the session's JVM can load the class ``name``."""
    try:
        jvm = spark.sparkContext._jvm
        loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
        jvm.java.lang.Class.forName(name, False, loader)
        return True
    except Exception:  # noqa: BLE001 - any failure to load means "not available"
        return False
