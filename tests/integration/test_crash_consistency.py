"""A feature step killed between two table commits: readers keep the last complete run, the rerun completes it.

On the suite's engine (delta-spark under ``make test``, delta-rs under ``make
test-delta-rs``): a tiny shop is ingested and the recommendation features (four
tables, one batch) built once (the complete run). The same step then runs again in
a process of its own that is SIGKILLed right after its first table commit. Readers of the lake get every feature table at the
complete run's version with its rows; the manifest shows the unfinished run; the
step's next start rolls it back, writes its own run, leaves no orphan data files,
and ends with the same rows as the complete run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import shoplake
from helpers import TEST_OVERRIDES
from shoplake.datagen.synthetic import ShopParams, generate_shop
from shoplake.features.run import FEATURES_STEP, build_features
from shoplake.ingest.run import date_range, ingest
from shoplake.lake import Lake
from shoplake.lake.manifest import COMPLETE, ROLLED_BACK
from shoplake.recommend.pipeline import FEATURES

SHOP = ShopParams(days=6, users=15, items=10, seed=3, sessions_per_user_day=0.5)
DAY = SHOP.start + dt.timedelta(days=SHOP.days)

KILLED_RUN = """
import datetime as dt, json, os, signal, sys
from shoplake.config import load_config
from shoplake.features.run import build_features
from shoplake.lake import Lake, LakeBatch
from shoplake.recommend.pipeline import FEATURES
from shoplake.spark import get_spark

def die(self, staged):
    print("COMMITTED " + staged.table, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

LakeBatch._after_commit = die
cfg = load_config("local", json.loads(sys.argv[1]))
build_features(cfg, Lake(cfg, get_spark(cfg)), [dt.date.fromisoformat(sys.argv[2])], nodes=[FEATURES])
"""


def rows(lake, spec) -> list[tuple]:
    # Sums of doubles may differ in the last bits with the order Spark adds them in.
    return sorted(tuple(str(round(v, 9) if isinstance(v, float) else v) for v in r.values()) for r in lake.to_arrow(spec).to_pylist())


@pytest.fixture
def engine_cfg(test_engine, make_cfg, tmp_path):
    # The suite's engine: make test runs it on delta-spark, make test-delta-rs on delta-rs.
    return make_cfg(f"lake.engine={test_engine}"), [
        *TEST_OVERRIDES, f"lake.root={tmp_path}/lake", f"landing.root={tmp_path}/landing", f"runs_dir={tmp_path}/runs",
        f"lake.engine={test_engine}",
    ]  # fmt: skip


def test_a_feature_step_killed_between_commits(engine_cfg, spark, tmp_path):
    cfg, overrides = engine_cfg
    lake = Lake(cfg, spark)
    generate_shop(cfg.landing.root, SHOP)
    ingest(cfg, lake, date_range(SHOP.start, DAY - dt.timedelta(days=1)), FEATURES.sources())
    build_features(cfg, lake, [DAY], nodes=[FEATURES])
    outputs = FEATURES.outputs
    assert len(outputs) > 1 and all(lake.exists(spec) for spec in outputs)
    complete = {spec.full_name: (lake.version(spec), rows(lake, spec)) for spec in outputs}

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(shoplake.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", KILLED_RUN, json.dumps(overrides), DAY.isoformat()], capture_output=True,
                          text=True, env=env, timeout=900, cwd=tmp_path)  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    first = next(line.split(" ", 1)[1] for line in done.stdout.splitlines() if line.startswith("COMMITTED "))

    lake = Lake(cfg, spark)
    [killed] = lake.manifest.unfinished(FEATURES_STEP)
    assert lake.current_version(first) == complete[first][0] + 1
    for name, (version, expected) in complete.items():
        assert lake.version(name) == version, name
        assert rows(lake, name) == expected, name

    build_features(cfg, lake, [DAY], nodes=[FEATURES])
    statuses = {r.run_id: r.status for r in lake.manifest.runs()}
    assert statuses[killed.run_id] == ROLLED_BACK
    assert list(statuses.values())[-1] == COMPLETE and not lake.manifest.unfinished()
    for name, (_, expected) in complete.items():
        assert rows(lake, name) == expected, name

    # No data file is left that no version of its table references.
    from deltalake import DeltaTable

    for name in complete:
        uri = Path(lake.uri(name))
        table = DeltaTable(str(uri))
        referenced = {f.rsplit("/", 1)[-1] for v in range(table.version() + 1) for f in DeltaTable(str(uri), version=v).file_uris()}
        on_disk = {p.name for p in uri.rglob("*.parquet") if "_delta_log" not in p.parts}
        assert on_disk <= referenced, f"{name}: orphan files {sorted(on_disk - referenced)[:3]}"
