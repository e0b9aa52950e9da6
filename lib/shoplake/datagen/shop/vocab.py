"""The shop's vocabularies, from the JSON files under ``shoplake/datagen/vocab``: category words, ticket phrasing, query templates."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def _frozen(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return {k: _frozen(v) for k, v in value.items()}
    return value


def _load(name: str) -> Any:
    return _frozen(json.loads(resources.files("shoplake.datagen").joinpath("vocab", f"{name}.json").read_text(encoding="utf-8")))


#: Category vocabularies: the words carry the category into titles, descriptions and queries.
_VOCAB = _load("categories")
#: The category names, in vocabulary order.
CATEGORY_NAMES: tuple[str, ...] = tuple(_VOCAB)
_TICKET_TEMPLATES = _load("ticket_templates")
_RESOLUTIONS = _load("resolutions")
_TICKET_OPENERS = _load("ticket_openers")
_TICKET_CLOSERS = _load("ticket_closers")
_QUERY_TEMPLATES = _load("query_templates")
