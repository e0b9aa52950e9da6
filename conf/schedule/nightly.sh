#!/usr/bin/env bash
# The nightly chain for one landing day on clusters: the steps that shoplake.pipeline
# declares, each its own spark-submit or ray job submit, in order; the chain stops at
# the first failure. Every step replaces its run date's output, so re-running a day is
# safe. The commands are the ones `shoplake nightly --print-commands` prints.
#
#   conf/schedule/nightly.sh 2024-03-01        (default: yesterday, UTC)
#
# Expects: SPARK_MASTER_URL, RAY_DASHBOARD (http://head:8265), SHOPLAKE_LAKE_ROOT,
# SHOPLAKE_LANDING_ROOT, shoplake installed for `python3 -m shoplake`, and its wheel
# built with `pip wheel --no-deps -w dist .` (shipped as a .zip copy: --py-files puts
# only .zip/.egg/.jar on the executors' path).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN_DATE="${1:-$(date -u -d yesterday +%F)}"
export SHOPLAKE_WHEEL="dist/shoplake.zip"
cp "$(ls dist/shoplake-*.whl | tail -n 1)" "${SHOPLAKE_WHEEL}"
export SHOPLAKE_CONF_DIR="${SHOPLAKE_CONF_DIR:-$PWD/lib/shoplake/conf}"
export SHOPLAKE_RUNTIME_ENV="{\"env_vars\": {\"SHOPLAKE_LAKE_ROOT\": \"${SHOPLAKE_LAKE_ROOT}\"}}"

mapfile -t COMMANDS < <("${PYTHON:-python3}" -m shoplake nightly --print-commands --run-date "${RUN_DATE}")
for command in "${COMMANDS[@]}"; do
  echo "+ ${command}"
  eval "${command}"
done
