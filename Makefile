# Every target that runs code first makes sure .venv exists and holds the project.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test test-slow bench clean clean-lake

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

clean-lake:
	rm -rf lake data runs

clean: clean-lake
	rm -rf $(VENV) build *.egg-info lib/*.egg-info
