"""The forecaster families: classic baselines and the global neural quantile model."""
