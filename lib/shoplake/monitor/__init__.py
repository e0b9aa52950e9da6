"""Monitoring: data-quality profiles of the lake's tables."""
