"""The precision-recall picture: one step line per model whose area is its PR-AUC, the marks, the files."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from matplotlib.image import imread

from shoplake.fraud.chart import HEIGHT, WIDTH, pr_figure, render_pr_svg, write_pr_chart
from shoplake.fraud.metrics import average_precision, pr_curve

SVG = "{http://www.w3.org/2000/svg}"


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


def by_gid(fig, gid: str):
    found = [a for a in fig.axes[0].get_children() if a.get_gid() == gid]
    assert len(found) == 1, gid
    return found[0]


def test_area_under_each_step_line_is_the_average_precision():
    y, s = scores(separation=1.5)
    precision, recall, _ = pr_curve(y, s)
    line = by_gid(pr_figure({"m": (precision, recall)}, "t"), "curve-0")
    assert line.get_drawstyle() == "steps-pre"
    r, p = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
    # Steps "pre": the segment up to each recall is drawn at that point's precision.
    assert float(np.sum(np.diff(r) * p[1:])) == pytest.approx(average_precision(y, s), abs=1e-12)
    assert r[0] == 0 and r[-1] == 1


def test_legend_marks_and_random_line():
    lines = curves()
    fig = pr_figure(
        lines, "Fraud <test>", subtitle="validation payments", points={"corner": (0.0, 1.0), "gbt review": (0.4, 0.6)}, fraud_rate=0.03
    )
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [*lines, "random (fraud rate 3 %)", "corner", "gbt review"]
    review = by_gid(fig, "point-1")
    assert (list(review.get_xdata()), list(review.get_ydata())) == ([0.6], [0.4])  # recall on x, precision on y
    assert list(by_gid(fig, "random").get_ydata()) == [0.03, 0.03]
    assert fig.axes[0].get_xlim() == (0, 1)
    root = ET.fromstring(render_pr_svg(lines, "Fraud <test>", points={"gbt review": (0.4, 0.6)}))
    assert root.tag == f"{SVG}svg" and {"curve-0", "curve-1", "point-0"} <= {e.get("id") for e in root.iter()}
    assert "Fraud <test>" in [t.text for t in root.iter(f"{SVG}text")]


def test_curve_order_does_not_matter_and_missing_recall_is_skipped():
    precision, recall = np.array([1.0, 0.5, 2 / 3]), np.array([0.5, 0.5, 1.0])
    assert render_pr_svg({"m": (precision, recall)}, "t") == render_pr_svg({"m": (precision[::-1], recall[::-1])}, "t")
    fig = pr_figure({"none": (np.array([0.0]), np.array([np.nan]))}, "t")
    assert len(by_gid(fig, "curve-0").get_xdata()) == 0
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["none"]


def test_write_pr_chart_writes_svg_png_and_a_page(tmp_path):
    path = write_pr_chart(tmp_path / "fraud", curves(), "Fraud models", subtitle="test payments", points={"review": (0.3, 0.7)})
    assert path == tmp_path / "fraud" / "pr_curve.svg"
    assert ET.parse(path).getroot().tag == f"{SVG}svg"
    assert imread(tmp_path / "fraud" / "pr_curve.png").shape[:2] == (HEIGHT, WIDTH)
    page = (tmp_path / "fraud" / "pr_curve.html").read_text(encoding="utf-8")
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
        pr_figure(title="t", **kwargs)
