"""An installed shoplake runs on its own: the wheel, in a fresh virtual environment outside the checkout, on its shipped configuration."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from shoplake.cluster import build_wheel

CHECKOUT = Path(__file__).resolve().parents[2]


def _run(argv: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOPLAKE_", "PYTHONPATH", "VIRTUAL_ENV"))}
    env["COLUMNS"] = "200"  # tables on one line each
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory, make_cfg_module):
    """A fresh venv holding only the shoplake wheel; its dependencies are seen through a ``.pth`` line to this venv's site-packages."""
    tmp = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(make_cfg_module(f"cluster.run_dir={tmp}/build"))
    assert wheel.suffix == ".whl"
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())  # fmt: skip
    # The dependencies (torch, pyspark, ray, ...) come from this environment; shoplake itself only from the wheel.
    (site / "zz_shoplake_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], tmp, 300)
    shop = tmp / "shop"
    shop.mkdir()
    return venv, shop


@pytest.fixture(scope="module")
def make_cfg_module(tmp_path_factory):
    from helpers import TEST_OVERRIDES
    from shoplake.config import load_config

    root = tmp_path_factory.mktemp("cfg")
    return lambda *overrides: load_config("local", [*TEST_OVERRIDES, f"lake.root={root}/lake", *overrides])


@pytest.mark.slow  # a fresh virtualenv and a whole night on delta-spark, lake maintenance included: over 15 minutes here
def test_the_wheel_installs_and_runs_generate_and_nightly_outside_the_checkout(installed):
    venv, shop = installed
    where = _run(
        [str(venv / "bin" / "python"), "-c", "import shoplake, shoplake.config as c; print(shoplake.__file__); print(c.PACKAGE_CONF_DIR)"],
        shop,
        120,
    )
    module, conf = (Path(line) for line in where.stdout.split())
    assert venv in module.parents and CHECKOUT not in module.parents
    assert {p.name for p in conf.iterdir()} >= {"base.yaml", "local.yaml", "cluster.yaml"}

    shoplake = str(venv / "bin" / "shoplake")
    assert "nightly" in _run([shoplake, "--help"], shop, 120).stdout
    _run([shoplake, "generate", "--days", "40", "--users", "200", "--items", "80", "--start", "2024-01-01"], shop, 300)
    assert (shop / "data" / "landing" / "_ground_truth.json").is_file()  # under the current folder: no checkout, no conf/
    skip = ["--no-forecast", "--no-fraud", "--no-support", "--no-categorize", "--no-ads"]
    _run([shoplake, "nightly", "--from", "2024-01-01", "--to", "2024-02-09", *skip, "--set", "recommender.models=[popularity,cooccurrence]"],
         shop, 900)  # fmt: skip
    assert not (shop / "conf").exists()
    tables = {p.relative_to(shop / "lake").as_posix() for p in (shop / "lake").glob("*/*") if (p / "_delta_log").is_dir()}
    assert {"bronze/orders", "silver/interactions", "gold/user_item_matrix", "serving/recommendations", "ops/table_profiles"} <= tables
    listed = _run([shoplake, "models", "--use-case", "recommend"], shop, 120).stdout
    assert ("cooccurrence" in listed or "popularity" in listed) and "serving" in listed  # the champion of the two
