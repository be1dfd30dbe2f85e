"""The SVG chart helpers: accessible names, escaped text, a table fallback, and sane output without data."""

import datetime as dt

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
