"""HTTP helpers every route shares: refusing unknown query parameters, and validation errors that name the field."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request


class OnlyParams:
    """A dependency refusing query parameters other than ``names`` (400, naming them).

    A module-level class rather than a closure: Serve ships the FastAPI app to its
    replicas with cloudpickle, and a closure would lose the ``Request`` annotation.
    Asynchronous, like :class:`Holder`, because it never blocks: FastAPI runs a
    synchronous dependency on a worker thread, a hand-over there and back per request.
    """

    def __init__(self, *names: str):
        self.allowed = frozenset(names)

    async def __call__(self, request: Request) -> None:
        unknown = sorted(set(request.query_params) - self.allowed)
        if unknown:
            raise HTTPException(
                status_code=400, detail=f"unknown query parameter(s): {', '.join(unknown)}; allowed: {', '.join(sorted(self.allowed))}"
            )


def validation_message(errors: list[dict[str, Any]]) -> str:
    """One readable line for FastAPI's validation errors, naming each query parameter or body field."""
    parts = []
    for e in errors:
        in_body = e["loc"][0] == "body"
        where = ".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0])
        if in_body and e["type"] == "json_invalid":
            parts.append(f"the body is not valid JSON: {e.get('ctx', {}).get('error', e['msg'])}")
        elif in_body and len(e["loc"]) == 1:
            parts.append("a JSON object body is required" if e["type"] == "missing" else f"body: {e['msg']}")
        else:
            what = f"field {where}" if in_body else f"query parameter {where}"
            if e["type"] == "missing":
                parts.append(f"{what} is required")
            elif e["type"] == "extra_forbidden":
                parts.append(f"{what} is not a known field")
            else:
                parts.append(f"{what}: {e['msg']} (got {e.get('input')!r})")
    return "; ".join(parts)


#: The model holders of this replica, by use case (filled when the ingress replica starts).
_HOLDERS: dict[str, Any] = {}


def install_holders(holders: dict[str, Any]) -> None:
    """Make ``holders`` the ones :class:`Holder` dependencies hand to the routes of this process."""
    _HOLDERS.clear()
    _HOLDERS.update(holders)


class Holder:
    """A dependency handing a route its use case's model holder (503 when this application serves none).

    A module-level class for the same reason as :class:`OnlyParams`.
    """

    def __init__(self, use_case: str):
        self.use_case = use_case

    async def __call__(self) -> Any:
        try:
            return _HOLDERS[self.use_case]
        except KeyError:
            raise HTTPException(status_code=503, detail=f"{self.use_case} is not served by this application") from None
