"""The benchmark datasets' lakes, built through the platform's own steps when missing.

* ``online-retail``: the UCI Online Retail import (2010-12-01 .. 2011-12-09; run date
  2011-12-10), landing files under ``data/online-retail``, lake under ``data/lake-online-retail``;
* ``synthetic``: the demo's synthetic shop (``generate`` settings) with 2,000 users, five
  times the demo's, under ``data/synthetic-bench`` and ``data/lake-synthetic-bench``;
* ``synthetic-fraud``: a larger synthetic shop for the fraud models (5,000 customers,
  180 days, 2 % fraud: a real shop's rate), under ``data/synthetic-fraud`` and
  ``data/lake-synthetic-fraud``.
* ``bitext-pricerunner`` (:func:`ensure_text_lake`): the Bitext customer-service
  messages (spread over 30 days) and the PriceRunner catalogue (one day) imported,
  ingested and turned into the text tables for run date 2024-01-31, under
  ``data/nlp-landing`` and ``data/lake-nlp``.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {
    "online-retail": {
        "landing": "data/online-retail",
        "lake": "data/lake-online-retail",
        "first": dt.date(2010, 12, 1),
        "last": dt.date(2011, 12, 9),
        "overrides": ["ingest.sources=[orders,products]"],
    },
    # Five times the demo's users: enough judged users a window for the intervals to separate models.
    "synthetic": {"landing": "data/synthetic-bench", "lake": "data/lake-synthetic-bench", "overrides": [], "generate": {"users": 2000}},
    "synthetic-fraud": {
        "landing": "data/synthetic-fraud",
        "lake": "data/lake-synthetic-fraud",
        "overrides": [],
        "generate": {"users": 5000, "days": 180, "fraud_rate": 0.02},
    },
}


TEXT_DATASET = {
    "landing": "data/nlp-landing", "lake": "data/lake-nlp", "first": dt.date(2024, 1, 1), "days": 30,
    "imports": {"bitext": "bitext-customer-service", "pricerunner": "pricerunner-products"},
}  # fmt: skip


def _shoplake(*args: str) -> None:
    cmd = [str(ROOT / ".venv/bin/shoplake"), *args]
    print("$ " + " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def ensure_lake(name: str, cfg, run_date: dt.date | None = None, *, needs: tuple = ()) -> tuple[list[str], dt.date]:
    """Config overrides pointing at the dataset's lake, and the run date; builds what is missing.

    Without ``run_date`` the run date is the morning after the dataset's last day. The
    lake gets the features of the run date, and the run date's partition of every
    table in ``needs`` (default: the recommendation tables).
    """
    from shoplake.config import load_config
    from shoplake.lake import Lake
    from shoplake.recommend.schemas import USER_ITEM_MATRIX
    from shoplake.usecases import use_cases

    spec = DATASETS[name]
    if name.startswith("synthetic"):
        g = {**cfg.generate.model_dump(), **spec.get("generate", {})}
        start = dt.date.fromisoformat(g["start"])
        spec = {**spec, "first": start, "last": start + dt.timedelta(days=g["days"] - 1)}
    run_date = run_date or spec["last"] + dt.timedelta(days=1)
    overrides = [f"landing.root={spec['landing']}", f"lake.root={spec['lake']}", *spec["overrides"]]
    sets = [a for o in overrides for a in ("--set", o)]
    lake = Lake(load_config(cfg.env, overrides))
    if lake.version(USER_ITEM_MATRIX) is None:
        if not (ROOT / spec["landing"]).is_dir():
            if name == "online-retail":
                _shoplake("import", "online-retail", str(ROOT.parent / "shared/data/online-retail/by-day"), "--out", spec["landing"])
            else:
                g = spec.get("generate", {})
                sizes = [a for key in ("users", "days") if key in g for a in (f"--{key}", str(g[key]))]
                rate = ["--set", f"generate.fraud_rate={g['fraud_rate']}"] if "fraud_rate" in g else []
                _shoplake("generate", "--out", spec["landing"], *sizes, *rate)
        # Ingest and features only: the benches train what they compare themselves.
        no_use_cases = [f"--no-{uc.name}" for uc in use_cases()]
        _shoplake("nightly", "--from", str(spec["first"]), "--to", str(spec["last"]), *no_use_cases, *sets)
    # The recommendation run cuts every history it needs from the run date's snapshot.
    missing = run_date not in lake.run_dates(USER_ITEM_MATRIX)
    missing = missing or any(run_date not in lake.run_dates(table) for table in needs)
    if missing:
        _shoplake("features", "--run-date", str(run_date), *sets)
    return overrides, run_date


def ensure_text_lake(cfg) -> tuple[list[str], dt.date]:
    """Config overrides pointing at the ``bitext-pricerunner`` lake, and its run date; builds what is missing."""
    from shoplake.categorize.schemas import PRODUCT_TEXT
    from shoplake.config import load_config
    from shoplake.lake import Lake
    from shoplake.support.schemas import SUPPORT_TRAINING

    spec = TEXT_DATASET
    first, last = spec["first"], spec["first"] + dt.timedelta(days=spec["days"] - 1)
    run_date = last + dt.timedelta(days=1)
    overrides = [f"landing.root={spec['landing']}", f"lake.root={spec['lake']}"]
    sets = [a for o in overrides for a in ("--set", o)]
    lake = Lake(load_config(cfg.env, overrides))
    if all(run_date in lake.run_dates(table) for table in (SUPPORT_TRAINING, PRODUCT_TEXT)):
        return overrides, run_date
    if not (ROOT / spec["landing"]).is_dir():
        for dataset, folder in spec["imports"].items():
            _shoplake("import", dataset, str(ROOT.parent / "shared/data" / folder), "--out", spec["landing"])
    # The catalogue lands once, on the first day; the messages every day.
    _shoplake("ingest", "--run-date", str(first), "--source", "products", *sets)
    _shoplake("ingest", "--from", str(first), "--to", str(last), "--source", "support_tickets", *sets)
    _shoplake("features", "--run-date", str(run_date), "--no-holdout", *sets)
    return overrides, run_date
