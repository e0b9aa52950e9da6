# Every target that runs code first makes sure .venv exists and holds the project.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test test-delta-rs test-slow lint docs bench bench-fast clean clean-lake cluster-up cluster-down cluster-test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,docs]"
	touch $(STAMP)

setup: $(STAMP)

## Generate a small synthetic shop (90 days), ingest every day into the lake, print the lake.
demo: $(STAMP)
	$(BIN)/shoplake demo

## The default test suite (slow end-to-end and cluster tests are excluded).
test: $(STAMP)
	$(BIN)/python -m pytest -q

## The lake, ingest and crash tests again on the delta-rs engine, in a Spark without the Delta jars (as on a machine without Maven access).
test-delta-rs: $(STAMP)
	SHOPLAKE_TEST_ENGINE=delta-rs $(BIN)/python -m pytest -q tests/unit/lake tests/unit/ingest tests/unit/features/test_history.py tests/integration/test_ingest.py tests/integration/test_lake_interop.py tests/integration/test_crash_consistency.py

## Slow end-to-end tests (full Online Retail import, large generator runs).
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

## Lint: ruff (rules and format), the import contracts (use cases above the platform, independent, no cycles), the docs.
lint: $(STAMP)
	$(BIN)/ruff check lib tests bench jobs ray_apps conf docs
	$(BIN)/ruff format --check lib tests bench jobs ray_apps conf docs
	$(BIN)/lint-imports
	$(BIN)/python docs/gen_config_reference.py --check
	$(BIN)/mkdocs build --strict --quiet --site-dir build/site

## The documentation site, built into build/site.
docs: $(STAMP)
	$(BIN)/python docs/gen_config_reference.py
	$(BIN)/mkdocs build --strict --site-dir build/site

## Benchmarks: ours and the baselines side by side, with the ratio. bench-fast: the two that take minutes;
## bench: every one (the quality benches train on public data and take an hour or more together).
BENCH_FAST := lake_write recommend_latency
BENCH_ALL  := $(BENCH_FAST) train_throughput recommend_quality forecast_quality fraud_quality nlp_quality

bench-fast: $(STAMP)
	set -e; for b in $(BENCH_FAST); do $(BIN)/python bench/$$b.py; done

bench: $(STAMP)
	set -e; for b in $(BENCH_ALL); do $(BIN)/python bench/$$b.py; done

## Local Spark standalone + Ray clusters on 127.0.0.1 (ports and sizes: cluster.* in lib/shoplake/conf/base.yaml).
cluster-up: $(STAMP)
	$(BIN)/shoplake cluster up

cluster-down: $(STAMP)
	$(BIN)/shoplake cluster down

## Jobs on clusters the tests start and stop themselves (spark-submit, ray job submit, serve deploy).
cluster-test: $(STAMP)
	$(BIN)/python -m pytest -m cluster -q

clean-lake:
	rm -rf lake data runs

clean: clean-lake
	rm -rf $(VENV) build *.egg-info lib/*.egg-info
