"""What a lake root and its storage options mean to delta-rs, pyarrow and Spark (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs as pafs
import pytest

from helpers import TEST_OVERRIDES
from shoplake.config import ConfigError, load_config
from shoplake.spark import session_conf
from shoplake.storage import HADOOP_AWS_PACKAGE, HADOOP_AZURE_PACKAGE, HADOOP_VERSION, LakeStorage, pyarrow_filesystem, spark_uri

KEYS = {"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "SECRET"}
AZURE_ROOT = "abfss://shop@acct.dfs.core.windows.net/lake"


def lake_cfg(root: str, *overrides: str):
    return load_config("local", [*TEST_OVERRIDES, f"lake.root={root}", *overrides]).lake


def test_hadoop_connectors_match_the_hadoop_pyspark_ships():
    import pyspark

    jars = {p.name for p in (Path(pyspark.__file__).parent / "jars").glob("hadoop-client-api-*.jar")}
    assert jars == {f"hadoop-client-api-{HADOOP_VERSION}.jar"}
    assert HADOOP_AWS_PACKAGE.endswith(f":{HADOOP_VERSION}") and HADOOP_AZURE_PACKAGE.endswith(f":{HADOOP_VERSION}")


def test_settings_left_out_of_the_config_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("SHOP_S3_KEY", "from-config")
    environ = {**KEYS, "AWS_DEFAULT_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://minio:9000", "UNRELATED": "x"}
    lake = lake_cfg("s3://bucket/lake", "lake.storage_options={aws_access_key_id: '${SHOP_S3_KEY}'}")
    storage = LakeStorage.from_config(lake, environ)
    # The configuration wins (its ${ENV} reference resolved), whatever the case of its keys.
    assert storage.options == {
        "AWS_ACCESS_KEY_ID": "from-config",
        "AWS_SECRET_ACCESS_KEY": "SECRET",
        "AWS_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL": "http://minio:9000",
        # A plain-HTTP endpoint is allowed because it is written as one.
        "AWS_ALLOW_HTTP": "true",
    }
    storage.check()


def test_an_https_endpoint_is_not_opened_to_plain_http():
    storage = LakeStorage.from_config(lake_cfg("s3://bucket/lake"), {**KEYS, "AWS_ENDPOINT_URL": "https://s3.example.com"})
    assert "AWS_ALLOW_HTTP" not in storage.options


def test_a_local_lake_has_no_storage_options_and_needs_no_connector():
    storage = LakeStorage.from_config(lake_cfg("lake"), {**KEYS})
    assert storage.options is None and storage.spark_packages() == [] and storage.hadoop_conf() == {}
    storage.check()


@pytest.mark.parametrize(
    ("root", "environ", "named"),
    [
        ("s3://bucket/lake", {}, "lake.storage_options.AWS_ACCESS_KEY_ID and lake.storage_options.AWS_SECRET_ACCESS_KEY"),
        ("s3://bucket/lake", {"AWS_ACCESS_KEY_ID": "AKID"}, "set lake.storage_options.AWS_SECRET_ACCESS_KEY "),
        (AZURE_ROOT, {}, "lake.storage_options.AZURE_STORAGE_ACCOUNT_KEY"),
        (AZURE_ROOT, {"AZURE_CLIENT_ID": "app"}, "lake.storage_options.AZURE_CLIENT_SECRET and lake.storage_options.AZURE_TENANT_ID"),
    ],
)
def test_an_object_store_root_without_credentials_is_a_config_error_naming_them(root, environ, named):
    storage = LakeStorage.from_config(lake_cfg(root), environ)
    with pytest.raises(ConfigError, match=f"lake.root {root} needs credentials: .*{named}"):
        storage.check()


def test_the_lake_refuses_an_s3_root_without_credentials(monkeypatch):
    from shoplake.lake import Lake

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    cfg = load_config("local", [*TEST_OVERRIDES, "lake.root=s3://bucket/lake"])
    with pytest.raises(ConfigError, match="AWS_ACCESS_KEY_ID"):
        Lake(cfg)
    # Where the machine provides them (an instance role), nothing is asked for, and Spark gets no keys.
    ambient = load_config("local", [*TEST_OVERRIDES, "lake.root=s3://bucket/lake", "lake.ambient_credentials=true"])
    Lake(ambient)
    assert not any("key" in k for k in LakeStorage.from_config(ambient.lake, {}).hadoop_conf())


def test_s3_settings_become_fs_s3a_settings_of_the_lakes_bucket():
    environ = {**KEYS, "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9000"}
    conf = LakeStorage.from_config(lake_cfg("s3://shop-bucket/lake"), environ).hadoop_conf()
    p = "fs.s3a.bucket.shop-bucket."
    assert conf == {
        p + "endpoint": "http://127.0.0.1:9000",
        p + "connection.ssl.enabled": "false",
        p + "path.style.access": "true",
        p + "endpoint.region": "us-east-1",
        p + "access.key": "AKID",
        p + "secret.key": "SECRET",
        p + "aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
    }
    # Temporary credentials need the provider that reads the session token.
    temporary = LakeStorage.from_config(lake_cfg("s3://b/lake"), {**KEYS, "AWS_SESSION_TOKEN": "tok"}).hadoop_conf()
    assert temporary["fs.s3a.bucket.b.session.token"] == "tok"
    assert temporary["fs.s3a.bucket.b.aws.credentials.provider"].endswith("TemporaryAWSCredentialsProvider")
    # AWS itself: no endpoint, so S3A keeps its own endpoint, TLS and addressing.
    assert not any(k.endswith(("endpoint", "path.style.access", "ssl.enabled")) for k in temporary)


def test_azure_credentials_become_abfs_settings_of_the_account():
    host = "acct.dfs.core.windows.net"
    key = LakeStorage.from_config(lake_cfg(AZURE_ROOT), {"AZURE_STORAGE_ACCOUNT_KEY": "k=="})
    assert key.options["AZURE_STORAGE_ACCOUNT_NAME"] == "acct"  # from the root
    assert key.hadoop_conf() == {f"fs.azure.account.key.{host}": "k=="}
    sas = LakeStorage.from_config(lake_cfg(AZURE_ROOT), {"AZURE_STORAGE_SAS_KEY": "?sv=1&sig=x"}).hadoop_conf()
    assert sas == {f"fs.azure.account.auth.type.{host}": "SAS", f"fs.azure.sas.fixed.token.{host}": "sv=1&sig=x"}
    principal = {"AZURE_CLIENT_ID": "app", "AZURE_CLIENT_SECRET": "pw", "AZURE_TENANT_ID": "tenant"}
    oauth = LakeStorage.from_config(lake_cfg(AZURE_ROOT), principal).hadoop_conf()
    assert oauth[f"fs.azure.account.auth.type.{host}"] == "OAuth"
    assert oauth[f"fs.azure.account.oauth2.client.endpoint.{host}"] == "https://login.microsoftonline.com/tenant/oauth2/token"
    assert oauth[f"fs.azure.account.oauth2.client.secret.{host}"] == "pw"


def test_spark_sees_s3_through_s3a_and_other_uris_unchanged():
    assert spark_uri("s3://bucket/lake/bronze/orders") == "s3a://bucket/lake/bronze/orders"
    assert spark_uri("s3a://bucket/lake") == "s3a://bucket/lake"
    assert spark_uri(AZURE_ROOT) == AZURE_ROOT
    assert spark_uri("/srv/lake") == "/srv/lake" and spark_uri("file:///srv/lake") == "file:///srv/lake"


def test_a_session_for_an_s3_lake_fetches_hadoop_aws_and_sets_its_bucket(monkeypatch):
    for key, value in {**KEYS, "AWS_ENDPOINT_URL": "http://127.0.0.1:9000"}.items():
        monkeypatch.setenv(key, value)
    cfg = load_config("local", [*TEST_OVERRIDES, "lake.root=s3://shop-bucket/lake", "lake.engine=delta-spark"])
    conf = session_conf(cfg, with_delta=True)
    assert conf["spark.jars.packages"].split(",")[-1] == HADOOP_AWS_PACKAGE
    assert conf["spark.hadoop.fs.s3a.bucket.shop-bucket.endpoint"] == "http://127.0.0.1:9000"
    assert conf["spark.delta.logStore.s3a.impl"] == "io.delta.storage.S3SingleDriverLogStore"
    # A version named in the configuration replaces the one that matches PySpark.
    pinned = load_config(
        "local", [*TEST_OVERRIDES, "lake.root=s3://shop-bucket/lake", "spark.packages=[org.apache.hadoop:hadoop-aws:3.4.1]"]
    )
    assert session_conf(pinned, with_delta=False)["spark.jars.packages"] == "org.apache.hadoop:hadoop-aws:3.4.1"
    # A local lake adds nothing.
    local = session_conf(load_config("local", TEST_OVERRIDES), with_delta=False)
    assert "spark.jars.packages" not in local and not any(k.startswith("spark.hadoop.fs.") for k in local)


def test_pyarrow_filesystems_for_each_kind_of_root():
    fs, path = pyarrow_filesystem("s3://bucket/lake/t", {**KEYS, "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_REGION": "us-east-1"})
    assert isinstance(fs, pafs.S3FileSystem) and path == "bucket/lake/t"
    assert fs.region == "us-east-1"
    fs, path = pyarrow_filesystem(f"{AZURE_ROOT}/t", {"AZURE_STORAGE_ACCOUNT_NAME": "acct", "AZURE_STORAGE_ACCOUNT_KEY": "a2V5"})
    assert isinstance(fs, pafs.AzureFileSystem) and path == "shop/lake/t"
    fs, path = pyarrow_filesystem("file:///srv/lake/t")
    assert isinstance(fs, pafs.LocalFileSystem) and path == "/srv/lake/t"


def test_a_session_without_the_connector_is_a_config_error_naming_the_package():
    no_jvm = object()  # a session whose JVM loads nothing
    with pytest.raises(ConfigError, match=f"add {HADOOP_AWS_PACKAGE} to spark.packages \\(spark-submit: --packages"):
        LakeStorage.from_config(lake_cfg("s3://bucket/lake"), KEYS).check_spark(no_jvm)
    with pytest.raises(ConfigError, match=HADOOP_AZURE_PACKAGE):
        LakeStorage.from_config(lake_cfg(AZURE_ROOT), {"AZURE_STORAGE_ACCOUNT_KEY": "k"}).check_spark(no_jvm)
    LakeStorage.from_config(lake_cfg("lake"), {}).check_spark(no_jvm)
