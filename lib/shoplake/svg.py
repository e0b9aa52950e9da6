"""Small pieces shared by the hand-written SVG charts (:mod:`shoplake.forecast_chart`, :mod:`shoplake.fraud_chart`)."""

from __future__ import annotations

SVG_NS = "http://www.w3.org/2000/svg"


def fmt(v: float) -> str:
    """A coordinate as written into SVG markup: one decimal (a tenth of a pixel is finer than any screen)."""
    return f"{v:.1f}"
