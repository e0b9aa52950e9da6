"""The actual-versus-forecast charts: what each artist draws, the page, the SVG and PNG pictures."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from matplotlib.image import imread

from shoplake.charts import ChartSeries
from shoplake.forecast.chart import (
    HEIGHT,
    WIDTH,
    chart_figure,
    forecast_figure,
    render_forecast_chart,
    write_forecast_chart,
    write_forecast_images,
)

SVG = "{http://www.w3.org/2000/svg}"
START = dt.date(2024, 3, 1)


def series(item_id: str = "i1", title: str | None = None, **kwargs) -> ChartSeries:
    values = dict(
        history=[3.0, 4.0, None, 5.0, 6.0], p10=[2.0, 3.0, 2.5], p50=[4.0, 5.0, 4.5], p90=[7.0, 9.5, 8.0], actual=[5.0],
    )  # fmt: skip
    return ChartSeries(item_id, START, title=title, **{**values, **kwargs})


def artist(fig, gid: str):
    found = [a for a in fig.axes[0].get_children() if a.get_gid() == gid]
    assert len(found) == 1, gid
    return found[0]


def days(*offsets: int) -> list[np.datetime64]:
    return [np.datetime64(START + dt.timedelta(days=d)) for d in offsets]


def test_each_artist_draws_the_numbers_of_the_series():
    fig = chart_figure(series())
    p50 = artist(fig, "p50")
    assert list(p50.get_xdata()) == days(0, 1, 2) and list(p50.get_ydata()) == [4.0, 5.0, 4.5]
    actual = artist(fig, "actual")
    assert list(actual.get_xdata()) == days(-5, -4, -3, -2, -1, 0)
    assert np.array_equal(actual.get_ydata(), [3.0, 4.0, np.nan, 5.0, 6.0, 5.0], equal_nan=True)  # the unknown day breaks the line
    band = artist(fig, "band").get_paths()[0].vertices
    assert sorted(set(band[:, 1])) == [2.0, 2.5, 3.0, 7.0, 8.0, 9.5]  # P10 below, P90 above
    start = artist(fig, "start").get_xdata()[0]
    assert start == np.datetime64(START) - np.timedelta64(12, "h")  # midnight before the first forecast day
    assert fig.axes[0].get_ylim()[0] == 0


def test_page_is_well_formed_with_one_svg_per_item_and_escaped_titles(tmp_path):
    title = 'Mugs & <Cups> "Deluxe"'
    path = write_forecast_chart(
        tmp_path / "out" / "chart.html", [series("i1"), series("a&b", title=title)], title="Sales <test>", subtitle="model v3"
    )
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "<Cups>" not in text and "Sales &lt;test&gt;" in text
    root = ET.fromstring(text)
    assert root.find("head/title").text == "Sales <test>"
    assert len(list(root.iter(f"{SVG}svg"))) == 2
    assert [h.text.strip() for h in root.iter("h2")] == ["i1", title]
    assert root.findall(".//h2")[1].find("span").text == "a&b"
    svg = next(root.iter(f"{SVG}svg"))
    ids = {e.get("id") for e in svg.iter()}
    assert {"band", "p50", "actual", "start"} <= ids
    texts = " ".join(t.text or "" for t in svg.iter(f"{SVG}text"))
    assert "units / day" in texts and "forecast from 01 Mar" in texts and "P10 to P90" in texts
    captions = [p.text for p in root.iter("p") if p.get("class") == "caption"]
    assert "P50 total 13.5 units" in captions[0] and "1 of 1 inside the band" in captions[0]


def test_a_single_forecast_day_draws_a_bar_and_no_items_is_a_page_that_says_so():
    fig = chart_figure(series(history=[], p10=[0.0], p50=[1.0], p90=[2.0], actual=[]))
    band = artist(fig, "band").get_paths()[0].vertices
    assert len(set(band[:, 0])) == 2  # half a day each side of the day
    assert artist(fig, "p50").get_marker() == "o"
    assert "No items to show" in render_forecast_chart([])


def test_bad_series_are_refused():
    with pytest.raises(ValueError, match="same number"):
        series(p10=[1.0])
    with pytest.raises(ValueError, match="p90 has a missing"):
        series(p90=[1.0, float("nan"), 2.0])
    with pytest.raises(ValueError, match="4 actual values for 3"):
        series(actual=[1.0] * 4)
    with pytest.raises(ValueError, match="no items"):
        forecast_figure([])


def test_the_pictures_lay_out_items_in_a_grid_as_svg_and_png_and_rewrite_the_same_bytes(tmp_path):
    items = [series("i1", "Mugs & cups"), series("i2"), series("i3")]
    fig = forecast_figure(items, columns=2)
    assert [ax.get_title(loc="left") for ax in fig.axes if ax.get_visible()] == ["Mugs & cups (i1)", "i2", "i3"]
    svg, png = write_forecast_images(tmp_path / "backtest", items, columns=2)
    root = ET.parse(svg).getroot()
    assert root.tag == f"{SVG}svg" and {f"item-{n}" for n in range(3)} <= {e.get("id") for e in root.iter()}
    assert "Mugs &amp; cups (i1)" in svg.read_text(encoding="utf-8")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert imread(png).shape[:2] == (2 * (HEIGHT + 22), 2 * WIDTH)
    first = svg.read_bytes()
    write_forecast_images(tmp_path / "backtest", items, columns=2)
    assert svg.read_bytes() == first
