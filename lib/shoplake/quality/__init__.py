"""Data-quality checks on lake tables."""
