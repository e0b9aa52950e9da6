"""Spark feature transforms (bronze -> silver -> gold) and the steps that run them.

Transforms are pure: ``compute_*(df, ...) -> DataFrame``, no reads or writes. The
``run`` modules read the lake, call them and write the results.
"""
