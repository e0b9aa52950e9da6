"""The one bundle format every use case saves its models in, and the protocol its bundles follow.

A bundle is a folder: ``bundle.json`` (what the model is: its kind, labels or
settings, and metadata such as the run date and the Delta versions it read) next to
whatever files the model needs (weights, arrays, a booster). The registry logs and
downloads these folders as they are (:func:`shoplake.registry.download_bundle`); the
serving holder loads them through the use case's bundle class.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

#: The manifest every bundle folder holds.
BUNDLE_FILE = "bundle.json"


@runtime_checkable
class ModelBundle(Protocol):
    """What every use case's bundle class offers."""

    info: dict

    def save(self, folder: str | Path) -> Path:
        """Write the bundle into ``folder`` (created if missing) and return it."""
        ...

    @classmethod
    def load(cls, folder: str | Path) -> Any:
        """The bundle saved in ``folder``."""
        ...


def read_manifest(folder: str | Path) -> dict:
    """The ``bundle.json`` of a bundle folder.

    Raises:
        FileNotFoundError: ``folder`` holds no bundle.
    """
    path = Path(folder) / BUNDLE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no model bundle ({BUNDLE_FILE} is missing)")
    return json.loads(path.read_text())
