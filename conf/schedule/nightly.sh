#!/usr/bin/env bash
# The nightly chain for one run date on clusters: each step is its own spark-submit or
# ray job submit, in order, and the chain stops at the first failure. Every step
# replaces its run date's output, so re-running a date is safe.
#
#   conf/schedule/nightly.sh 2024-03-01        (default: yesterday, UTC)
#
# Expects: SPARK_MASTER_URL, RAY_DASHBOARD (http://head:8265), SHOPLAKE_LAKE_ROOT,
# SHOPLAKE_LANDING_ROOT, and the shoplake wheel built with `pip wheel --no-deps -w dist .`
# (shipped as a .zip copy: --py-files puts only .zip/.egg/.jar on the executors' path).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN_DATE="${1:-$(date -u -d yesterday +%F)}"
WHEEL="dist/shoplake.zip"
cp "$(ls dist/shoplake-*.whl | tail -n 1)" "${WHEEL}"
export SHOPLAKE_CONF_DIR="${SHOPLAKE_CONF_DIR:-$PWD/conf}"
ENV_JSON="{\"env_vars\": {\"SHOPLAKE_LAKE_ROOT\": \"${SHOPLAKE_LAKE_ROOT}\"}}"

FEATURES_FOR="$(date -u -d "${RUN_DATE} + 1 day" +%F)"

spark-submit --master "${SPARK_MASTER_URL}" --py-files "${WHEEL}" \
  jobs/ingest.py --env cluster --run-date "${RUN_DATE}"

# Features as of the morning after the day just ingested.
spark-submit --master "${SPARK_MASTER_URL}" --py-files "${WHEEL}" \
  jobs/build_features.py --env cluster --run-date "${FEATURES_FOR}"

ray job submit --address "${RAY_DASHBOARD}" --working-dir . --runtime-env-json "${ENV_JSON}" \
  -- python ray_apps/profile_tables.py --env cluster

ray job submit --address "${RAY_DASHBOARD}" --working-dir . --runtime-env-json "${ENV_JSON}" \
  -- python ray_apps/train_recommender.py --env cluster --run-date "${FEATURES_FOR}"

# Scores every user with the version the training run just registered.
ray job submit --address "${RAY_DASHBOARD}" --working-dir . --runtime-env-json "${ENV_JSON}" \
  -- python ray_apps/score_recommendations.py --env cluster --run-date "${FEATURES_FOR}"

ray job submit --address "${RAY_DASHBOARD}" --working-dir . --runtime-env-json "${ENV_JSON}" \
  -- python ray_apps/train_forecaster.py --env cluster --run-date "${FEATURES_FOR}"

# Forecasts and the replenishment plan with the forecaster just registered.
ray job submit --address "${RAY_DASHBOARD}" --working-dir . --runtime-env-json "${ENV_JSON}" \
  -- python ray_apps/score_forecasts.py --env cluster --run-date "${FEATURES_FOR}"

ray job submit --address "${RAY_DASHBOARD}" --working-dir . --runtime-env-json "${ENV_JSON}" \
  -- python ray_apps/train_fraud.py --env cluster --run-date "${FEATURES_FOR}"

# Fraud scores of the ingested day's payments with the champion just registered.
ray job submit --address "${RAY_DASHBOARD}" --working-dir . --runtime-env-json "${ENV_JSON}" \
  -- python ray_apps/score_fraud.py --env cluster --run-date "${FEATURES_FOR}"

# The support intent and product category models: fine-tuned, compared, champions registered.
ray job submit --address "${RAY_DASHBOARD}" --working-dir . --runtime-env-json "${ENV_JSON}" \
  -- python ray_apps/train_text.py --task support --env cluster --run-date "${FEATURES_FOR}"

ray job submit --address "${RAY_DASHBOARD}" --working-dir . --runtime-env-json "${ENV_JSON}" \
  -- python ray_apps/train_text.py --task categorization --env cluster --run-date "${FEATURES_FOR}"

# Every product's predicted category with the categorizer just registered.
ray job submit --address "${RAY_DASHBOARD}" --working-dir . --runtime-env-json "${ENV_JSON}" \
  -- python ray_apps/score_categories.py --env cluster --run-date "${FEATURES_FOR}"
