"""Synthetic shop generator and adapters that turn public datasets into landing files."""
