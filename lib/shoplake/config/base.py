"""The building blocks of every configuration section: strict models, searched settings, the error naming a key."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shoplake.errors import InputError


class ConfigError(InputError):
    """A configuration file or override is wrong; the message names the key."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Distribution(Strict):
    """A searched setting drawn from a range (``{loguniform: [0.0001, 0.01]}``): exactly one of the keys."""

    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
    randint: tuple[int, int] | None = Field(None, description="Integers from the first to the second, both included.")

    @model_validator(mode="after")
    def _one_range(self) -> Distribution:
        given = [
            (k, v) for k, v in (("uniform", self.uniform), ("loguniform", self.loguniform), ("randint", self.randint)) if v is not None
        ]
        if len(given) != 1:
            raise ValueError("give exactly one of uniform, loguniform, randint")
        kind, (low, high) = given[0]
        if not low < high:
            raise ValueError(f"{kind}: the low end {low} must be below the high end {high}")
        if kind == "loguniform" and low <= 0:
            raise ValueError(f"loguniform: the low end must be positive, got {low}")
        return self


#: A model's search space: each setting a list of values to choose from or a :class:`Distribution`.
SearchSpace = dict[str, list[Any] | Distribution]
