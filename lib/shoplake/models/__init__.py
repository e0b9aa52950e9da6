"""Torch modules and their losses, one file per model family."""
