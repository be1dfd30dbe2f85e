"""The SVG chart helpers: accessible names, escaped text, a table fallback, and sane output without data."""

import datetime as dt
import re
from pathlib import Path

from config.charts import Bar, Column, Point, column_chart, horizontal_bars, line_chart, meter


def test_every_chart_has_a_title_a_description_and_its_numbers_as_a_table():
    chart = horizontal_bars(
        [Bar("Failure", 0.5, back=0.75, text="50% verified"), Bar("Adoption", None)],
        title="Readiness per risk",
        percent=True,
    )

    assert chart.svg.startswith("<svg")
    assert 'role="img"' in chart.svg
    assert "<title id=" in chart.svg
    assert "<desc id=" in chart.svg
    assert "aria-labelledby=" in chart.svg
    assert chart.rows == [("Failure", "50% verified"), ("Adoption", "n/a")]
    assert 'class="chart-back"' in chart.svg
    assert 'class="chart-bar"' in chart.svg


def test_text_is_escaped():
    chart = column_chart([Column("<script>alert(1)</script>", 3)], title='Projects & "things"')

    assert "<script>" not in chart.svg
    assert "&lt;script&gt;" in chart.svg
    assert "Projects &amp; &quot;things&quot;" in chart.svg


def test_charts_without_data_say_so():
    assert "No data yet." in horizontal_bars([], title="Days to decision").svg
    assert "No readings yet." in line_chart([], title="KPI", target=80).svg
    assert column_chart([], title="Empty").rows == []


def test_line_chart_draws_readings_against_a_target_on_round_ticks():
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    points = [Point(start + dt.timedelta(days=7 * i), value) for i, value in enumerate((22, 40, 55, 71))]

    chart = line_chart(points, title="Weekly active users", target=85, baseline=0, unit="%")

    assert chart.svg.count("<circle") == 4
    assert 'class="chart-target"' in chart.svg
    assert "target 85" in chart.svg
    assert ">100</text>" in chart.svg
    assert ">50</text>" in chart.svg
    assert chart.rows[-1] == ("22 Jan 2026", "71 %")


def test_bars_link_where_asked_and_the_meter_names_itself():
    chart = horizontal_bars([Bar("Service desk", 2.5, href="/teams/1/")], title="Days")

    assert '<a href="/teams/1/" aria-label="Service desk: 2.5">' in chart.svg
    small = meter(0.4, 0.6, label="Readiness: 40% verified, 60% done")
    assert 'aria-label="Readiness: 40% verified, 60% done"' in small


STAGES = ["Initiation", "Planning", "Execution", "Monitoring", "Closure", "Closed", "Cancelled"]


def _font_px(css: str) -> float:
    """The font size app.css gives a chart text class."""
    sheet = (Path(__file__).resolve().parents[2] / "config" / "static" / "css" / "app.css").read_text()
    return float(re.search(rf"\.{css} {{ font-size: ([\d.]+)px", sheet)[1])


def test_every_chart_is_drawn_again_for_a_narrow_column():
    """A phone shows the narrow drawing near its drawn size (app.css picks it for figures under 480px), so its
    viewBox is about a phone's column wide and its text keeps the stylesheet's 10-12px."""
    charts = [
        horizontal_bars([Bar("Failure", 0.5)], title="Readiness", percent=True),
        column_chart([Column(stage, 1) for stage in STAGES], title="Projects by stage"),
        line_chart([Point(dt.date(2026, 1, 1), 3)], title="KPI", target=5),
    ]
    for chart in charts:
        assert 'class="chart ' in chart.narrow
        assert "chart-narrow" in chart.narrow
        assert "chart-wide" in chart.svg
        assert 'viewBox="0 0 320 ' in chart.narrow
        assert chart.narrow.count("<title id=") == 1  # still named for screen readers
    # Scaled from 320 units to a 300-380px column, 10.5px ticks stay at 10px or more.
    assert _font_px("chart-tick") * 300 / 320 >= 9.8


def test_narrow_category_labels_are_turned_not_dropped():
    chart = column_chart([Column(stage, n) for n, stage in enumerate(STAGES)], title="Projects by stage")

    assert chart.narrow.count('transform="rotate(-40') == len(STAGES)
    for stage in STAGES:
        assert f">{stage}</text>" in chart.narrow
    assert "rotate(" not in chart.svg  # at 560 wide they fit side by side


def test_narrow_weeks_keep_every_few_labels_and_the_marker_shows_at_zero():
    weeks = [Column(f"{day:02d} Nov", 0, highlight=index == 4) for index, day in enumerate(range(1, 17))]

    chart = column_chart(weeks, title="Load", series=True, marker_label="this week", empty="Nothing due.")

    labels = [c.label for c in weeks if f">{c.label}</text>" in chart.narrow]
    assert 3 <= len(labels) <= 8
    assert 'class="chart-current"' in chart.narrow
    assert ">this week</text>" in chart.svg
    assert ">Nothing due.</text>" in chart.svg
    assert 'class="chart-value"' not in chart.svg  # zeros are left unwritten in a series
