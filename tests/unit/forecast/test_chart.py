"""The actual-versus-forecast page: well-formed, one chart per item, coordinates where the numbers say."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import pytest

from shoplake.charts import ChartSeries, Layout, nice_step
from shoplake.forecast.chart import chart_svg, render_forecast_chart, render_forecast_svg, write_forecast_chart

SVG = "{http://www.w3.org/2000/svg}"
START = dt.date(2024, 3, 1)


def series(item_id: str = "i1", title: str | None = None, **kwargs) -> ChartSeries:
    # Largest value 9.5 -> grid step 2, top of the plot at 10 units.
    values = dict(
        history=[3.0, 4.0, None, 5.0, 6.0], p10=[2.0, 3.0, 2.5], p50=[4.0, 5.0, 4.5], p90=[7.0, 9.5, 8.0], actual=[5.0],
    )  # fmt: skip
    return ChartSeries(item_id, START, title=title, **{**values, **kwargs})


def points(element) -> list[float]:
    """The ``points`` attribute as a flat list x0, y0, x1, y1..."""
    return [float(v) for p in element.get("points").split() for v in p.split(",")]


def flat(pairs) -> list[float]:
    return [v for pair in pairs for v in pair]


def test_page_is_well_formed_with_one_svg_per_item(tmp_path):
    path = write_forecast_chart(
        tmp_path / "out" / "chart.html", [series("i1"), series("i2", title="Mugs")], title="Forecasts 2024-03-01", subtitle="model v3"
    )
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    root = ET.fromstring(text)  # parses as XML
    assert root.tag == "html" and root.find("head/title").text == "Forecasts 2024-03-01"
    svgs = list(root.iter(f"{SVG}svg"))
    assert len(svgs) == 2
    assert [h.text.strip() for h in root.iter("h2")] == ["i1", "Mugs"]  # a titled item shows its id beside the title
    for svg in svgs:
        classes = [e.get("class") for e in svg.iter()]
        assert classes.count("band") == 1 and classes.count("p50") == 1 and classes.count("start") == 1
        assert classes.count("actual") == 2  # the unknown day breaks the actual line in two
        assert svg.find(f"{SVG}g[@class='legend']") is not None
        texts = " ".join(t.text or "" for t in svg.iter(f"{SVG}text"))
        assert "units / day" in texts and "01 Mar" in texts and "P10 to P90" in texts


def test_band_and_lines_map_units_to_coordinates():
    lay = Layout()
    svg = ET.fromstring(chart_svg(series(), lay))
    # 8 days on the chart (5 history + 3 forecast); y from 0 to 10 units.
    x = lambda day: lay.left + day / 7 * lay.plot_width  # noqa: E731
    y = lambda units: lay.top + lay.plot_height * (1 - units / 10)  # noqa: E731
    band = points(svg.find(f"{SVG}polygon[@class='band']"))
    # Along P90 forward, then back along P10.
    expected = [(x(5), y(7.0)), (x(6), y(9.5)), (x(7), y(8.0)), (x(7), y(2.5)), (x(6), y(3.0)), (x(5), y(2.0))]
    assert band == pytest.approx(flat(expected), abs=0.051)
    assert band[3] == pytest.approx(36 + 200 * 0.05, abs=0.051)  # P90 9.5 of 10 units: 5% below the top
    p50 = points(svg.find(f"{SVG}polyline[@class='p50']"))
    assert p50 == pytest.approx(flat([(x(5), y(4.0)), (x(6), y(5.0)), (x(7), y(4.5))]), abs=0.051)
    first, second = (points(e) for e in svg.findall(f"{SVG}polyline[@class='actual']"))
    assert first == pytest.approx(flat([(x(0), y(3.0)), (x(1), y(4.0))]), abs=0.051)
    assert second == pytest.approx(
        flat([(x(3), y(5.0)), (x(4), y(6.0)), (x(5), y(5.0))]), abs=0.051
    )  # history, then the known forecast day
    start = svg.find(f"{SVG}line[@class='start']")
    assert float(start.get("x1")) == pytest.approx(x(4.5), abs=0.051)


def test_titles_are_escaped():
    title = 'Mugs & <Cups> "Deluxe"'
    page = render_forecast_chart([series("a&b", title=title)], title="Sales <test>")
    assert "<Cups>" not in page and "Mugs &amp; &lt;Cups&gt;" in page and "Sales &lt;test&gt;" in page
    root = ET.fromstring(page)
    h2 = root.find(".//h2")
    assert h2.text.strip() == title and h2.find("span").text == "a&b"
    assert root.find(f".//{SVG}svg").get("aria-label").endswith(title)


def test_single_forecast_day_flat_zero_and_no_items():
    page = render_forecast_chart([series(history=[], p10=[0.0], p50=[0.0], p90=[0.0], actual=[])])
    svg = ET.fromstring(page).find(f".//{SVG}svg")
    assert len(points(svg.find(f"{SVG}polygon[@class='band']"))) == 8
    assert svg.find(f"{SVG}circle[@class='p50']") is not None
    assert "No items to show" in render_forecast_chart([])


def test_nice_step_and_bad_series():
    assert [nice_step(v) for v in (9.5, 10, 0.8, 130, 0)] == [2, 2, 0.2, 50, 1]
    with pytest.raises(ValueError, match="same number"):
        series(p10=[1.0])
    with pytest.raises(ValueError, match="p90 has a missing"):
        series(p90=[1.0, float("nan"), 2.0])
    with pytest.raises(ValueError, match="4 actual values for 3"):
        series(actual=[1.0] * 4)


def test_standalone_svg_lays_out_the_charts_in_a_grid_under_their_titles():
    layout = Layout()
    svg = render_forecast_svg([series("i1", "Mugs & cups"), series("i2"), series("i3")], layout, columns=2)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert (root.get("width"), root.get("height")) == (str(2 * layout.width), str(2 * (layout.height + 22)))
    assert len(root.findall(f"{ns}g/{ns}svg")) == 3
    labels = [t.text for t in root.findall(f"{ns}text")]
    assert labels == ["Mugs & cups (i1)", "i2", "i3"]  # escaped in the markup, plain once parsed
    assert [g.get("transform") for g in root.findall(f"{ns}g")] == [
        "translate(0,22)",
        f"translate({layout.width},22)",
        f"translate(0,{layout.height + 44})",
    ]
