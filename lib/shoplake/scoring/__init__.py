"""Batch scorers run by Ray Data ``map_batches``, writing model outputs back to the lake."""
