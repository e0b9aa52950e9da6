"""The precision-recall picture: well-formed, one line per model, everything inside the plot, area equal to PR-AUC."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from shoplake.fraud.chart import LAYOUT, render_pr_svg, write_pr_chart
from shoplake.fraud.metrics import average_precision, pr_curve

SVG = "{http://www.w3.org/2000/svg}"
LEFT, TOP = LAYOUT.left, LAYOUT.top
RIGHT, BOTTOM = LAYOUT.left + LAYOUT.plot_width, LAYOUT.top + LAYOUT.plot_height


def scores(n: int = 2000, seed: int = 7, separation: float = 2.0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.03).astype(int)
    return y, 1 / (1 + np.exp(-(rng.normal(size=n) + separation * y - 3)))


def curves() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    y, s = scores()
    rules = np.round(s * 3)  # a few tied values
    out = {}
    for name, values in (("gbt", s), ("rules & co", rules)):
        precision, recall, _ = pr_curve(y, values)
        out[f"{name} (PR-AUC {average_precision(y, values):.3f})"] = (precision, recall)
    return out


def xy(polyline) -> np.ndarray:
    return np.array([[float(v) for v in p.split(",")] for p in polyline.get("points").split()])


def test_svg_parses_with_one_line_and_one_legend_entry_per_model():
    lines = curves()
    root = ET.fromstring(render_pr_svg(lines, "Fraud <test>", subtitle="validation payments", points={"gbt review": (0.4, 0.6)}))
    assert root.tag == f"{SVG}svg" and root.get("viewBox") == f"0 0 {LAYOUT.width} {LAYOUT.height}"
    drawn = [e for e in root.iter() if e.get("class") == "curve"]
    assert [e.get("data-model") for e in drawn] == list(lines)
    assert all(e.tag == f"{SVG}polyline" for e in drawn)
    legend = next(e for e in root.iter(f"{SVG}g") if e.get("class") == "legend")
    texts = [t.text for t in legend.iter(f"{SVG}text")]
    assert texts[: len(lines)] == list(lines)  # escaped '&' comes back as '&'
    assert "gbt review" in texts
    assert root.find(f"{SVG}title").text == "Fraud <test>"


def test_lines_and_points_stay_inside_the_plot_area():
    root = ET.fromstring(render_pr_svg(curves(), "t", points={"corner": (0.0, 1.0), "middle": (0.5, 0.25)}, fraud_rate=0.03))
    for line in (e for e in root.iter(f"{SVG}polyline") if e.get("class") == "curve"):
        coords = xy(line)
        assert (coords[:, 0] >= LEFT).all() and (coords[:, 0] <= RIGHT).all()
        assert (coords[:, 1] >= TOP).all() and (coords[:, 1] <= BOTTOM).all()
    dots = [(float(c.get("cx")), float(c.get("cy"))) for c in root.iter(f"{SVG}circle") if c.get("class") == "point"]
    # Recall on x, precision on y (upwards): (precision 0, recall 1) is the bottom-right corner.
    assert dots == [(RIGHT, BOTTOM), pytest.approx((LEFT + 0.25 * LAYOUT.plot_width, TOP + 0.5 * LAYOUT.plot_height), abs=0.05)]
    labels = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "point-label"]
    assert labels == ["corner", "middle"]
    baseline = next(e for e in root.iter(f"{SVG}line") if e.get("class") == "baseline")
    assert float(baseline.get("y1")) == pytest.approx(TOP + 0.97 * LAYOUT.plot_height, abs=0.05)


def test_area_under_the_steps_is_the_average_precision():
    y, s = scores(separation=1.5)
    precision, recall, _ = pr_curve(y, s)
    root = ET.fromstring(render_pr_svg({"m": (precision, recall)}, "t"))
    coords = xy(next(e for e in root.iter(f"{SVG}polyline")))
    r = (coords[:, 0] - LEFT) / LAYOUT.plot_width
    p = (BOTTOM - coords[:, 1]) / LAYOUT.plot_height
    # Horizontal segments carry the area; coordinates are rounded to a tenth of a pixel.
    area = float(np.sum(np.diff(r) * (p[1:] + p[:-1]) / 2))
    assert area == pytest.approx(average_precision(y, s), abs=2e-3)
    assert coords[0, 0] == LEFT and coords[-1, 0] == RIGHT  # from recall 0 to recall 1


def test_a_large_curve_is_thinned():
    y, s = scores(n=200_000, seed=3)
    precision, recall, _ = pr_curve(y, s)
    svg = render_pr_svg({"m": (precision, recall)}, "t")
    assert len(xy(next(ET.fromstring(svg).iter(f"{SVG}polyline")))) < len(precision) / 4
    assert len(svg) < 400_000


def test_curve_order_does_not_matter_and_missing_recall_is_skipped():
    precision, recall = np.array([1.0, 0.5, 2 / 3]), np.array([0.5, 0.5, 1.0])
    forward = render_pr_svg({"m": (precision, recall)}, "t")
    backward = render_pr_svg({"m": (precision[::-1], recall[::-1])}, "t")
    assert forward == backward
    no_frauds = ET.fromstring(render_pr_svg({"none": (np.array([0.0]), np.array([np.nan]))}, "t"))
    assert not [e for e in no_frauds.iter(f"{SVG}polyline")]
    assert "none" in [t.text for t in no_frauds.iter(f"{SVG}text")]


def test_write_pr_chart_writes_the_image_and_a_page(tmp_path):
    path = write_pr_chart(tmp_path / "fraud", curves(), "Fraud models", subtitle="test payments", points={"review": (0.3, 0.7)})
    assert path == tmp_path / "fraud" / "pr_curve.svg"
    assert ET.parse(path).getroot().tag == f"{SVG}svg"
    page = (tmp_path / "fraud" / "pr_curve.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    root = ET.fromstring(page)
    assert root.find("head/title").text == "Fraud models"
    assert len(list(root.iter(f"{SVG}svg"))) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(curves={"m": (np.array([0.5, 0.4]), np.array([0.1]))}), "1-D of one length"),
        (dict(curves={"m": (np.array([1.5]), np.array([0.1]))}), "lie in \\[0, 1\\]"),
        (dict(curves={"m": (np.array([0.5, 0.4, 0.3]), np.array([0.1, 0.5, 0.2]))}), "recall must rise"),
        (dict(curves={}, points={"p": (0.5, 1.2)}), "point 'p'"),
        (dict(curves={}, fraud_rate=-0.1), "fraud_rate"),
    ],
)
def test_bad_input_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        render_pr_svg(title="t", **kwargs)
