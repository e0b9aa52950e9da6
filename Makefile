# Every target that runs code first makes sure .venv exists and holds the project.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test test-slow bench clean clean-lake cluster-up cluster-down cluster-test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

## Generate a small synthetic shop (90 days), ingest every day into the lake, print the lake.
demo: $(STAMP)
	$(BIN)/shoplake demo

## The default test suite (slow end-to-end and cluster tests are excluded).
test: $(STAMP)
	$(BIN)/python -m pytest -q

## Slow end-to-end tests (full Online Retail import, large generator runs).
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

## Benchmarks: ours and a baseline side by side, with the ratio.
bench: $(STAMP)
	$(BIN)/python bench/lake_write.py
	$(BIN)/python bench/recommend_latency.py

## Local Spark standalone + Ray clusters on 127.0.0.1 (ports and sizes: cluster.* in conf/base.yaml).
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
