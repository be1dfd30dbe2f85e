"""Charts for the web UI as inline SVG, drawn on the server: nothing to load, nothing to run in the browser.

Each function returns a ``Chart``: the SVG (with ``role="img"``, a ``<title>`` and a ``<desc>`` that screen
readers announce) and the same numbers as a table, which the template ``includes/chart.html`` shows under the
chart as its text fallback. Colours come from CSS classes (``config/static/css/app.css``), so the charts follow the
page's theme.

An SVG scales its text with its width, so one drawing cannot be legible both on a laptop and on a phone: each
chart is drawn twice, at its own width and at ``NARROW`` (about a phone's column), and the stylesheet shows the one
that fits the chart's container (a container query), so that its text stays near its drawn size. The narrow drawing
thins or turns the labels of the column chart when they would not fit side by side.
"""

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

NO_VALUE = "n/a"
# The width of the narrow drawing, in the same units as the text sizes of app.css (12px labels): a phone's column.
NARROW = 320
# About how wide a character of an 11-12px label is, to decide whether labels fit side by side.
CHAR_WIDTH = 6.4


@dataclass(frozen=True)
class Chart:
    """An SVG chart and its data as a table (the text fallback)."""

    svg: SafeString
    title: str
    headers: Sequence[str] = ()
    rows: Sequence[Sequence[str]] = ()
    narrow: SafeString | None = None  # the same chart drawn for a narrow container

    def __str__(self) -> str:
        return self.svg


@dataclass(frozen=True)
class Bar:
    """One row of a horizontal bar chart: ``value`` drawn dark over a lighter ``back`` (for instance verified over
    done), with ``text`` written after the bar."""

    label: str
    value: float | None
    back: float | None = None
    text: str = ""
    href: str = ""


@dataclass(frozen=True)
class Column:
    """One column of a column chart."""

    label: str
    value: float
    href: str = ""
    highlight: bool = False
    tooltip: str = ""


@dataclass(frozen=True)
class Point:
    """One reading of a line chart."""

    at: datetime | date
    value: float


@dataclass(frozen=True)
class _Frame:
    width: int
    height: int
    parts: list[str] = field(default_factory=list)


def _num(value: float) -> str:
    """A compact number for labels: 12, 12.5, 1,200."""
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.1f}" if abs(value) >= 10 else f"{value:,.2f}".rstrip("0").rstrip(".")


def _chart_id(title: str, payload: str) -> str:
    return "chart-" + hashlib.sha1(f"{title}|{payload}".encode(), usedforsecurity=False).hexdigest()[:10]


def _svg(frame: _Frame, *, title: str, desc: str, css_class: str, variant: str = "wide") -> SafeString:
    chart_id = _chart_id(title, variant + "".join(frame.parts))
    css_class = f"{css_class} chart-{variant}"
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {css_class}" viewBox="0 0 {frame.width} {frame.height}" '
        f'role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" preserveAspectRatio="xMinYMin meet">'
        f'<title id="{chart_id}-title">{escape(title)}</title><desc id="{chart_id}-desc">{escape(desc)}</desc>'
    )
    # Safe: every piece of text that went into the parts was escaped where it was added.
    return mark_safe(head + "".join(frame.parts) + "</svg>")


def _text(x: float, y: float, text: str, css: str = "chart-label", anchor: str = "start", *, rotate: float = 0) -> str:
    turn = f' transform="rotate({rotate:g} {x:.1f} {y:.1f})"' if rotate else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" class="{css}" text-anchor="{anchor}"{turn}>{escape(text)}</text>'


def _link(href: str, inner: str, label: str) -> str:
    if not href:
        return inner
    return f'<a href="{escape(href)}" aria-label="{escape(label)}">{inner}</a>'


def _text_width(text: str) -> float:
    return len(text) * CHAR_WIDTH


# ------------------------------------------------------------------------------------------- horizontal bars


def horizontal_bars(
    bars: Sequence[Bar],
    *,
    title: str,
    desc: str = "",
    max_value: float | None = None,
    headers: Sequence[str] = ("", "value"),
    percent: bool = False,
    width: int = 400,
) -> Chart:
    """Horizontal bars, one per row, each under a line with its label (left) and its value (right), so that the
    chart stays readable when a phone shrinks it. With ``percent`` the values are shares between 0 and 1."""
    rows = [(bar.label, bar.text or (NO_VALUE if bar.value is None else _num(bar.value))) for bar in bars]
    desc = desc or _describe(rows)

    def draw(width: int, variant: str) -> SafeString:
        frame = _hbars(bars, width=width, max_value=max_value, percent=percent)
        return _svg(frame, title=title, desc=desc, css_class="chart-hbars", variant=variant)

    return Chart(
        svg=draw(width, "wide"), narrow=draw(min(width, NARROW), "narrow"), title=title, headers=headers, rows=rows
    )


def _hbars(bars: Sequence[Bar], *, width: int, max_value: float | None, percent: bool) -> _Frame:
    row_height, bar_height, top = 42, 14, 2
    height = top + row_height * max(len(bars), 1)
    highest = max([0.0] + [b.value or 0 for b in bars] + [b.back or 0 for b in bars])
    scale_max = (1.0 if percent else (max_value or highest)) or 1.0
    frame = _Frame(width, height)
    if not bars:
        frame.parts.append(_text(0, top + 18, "No data yet.", "chart-empty"))
    for index, bar in enumerate(bars):
        y = top + index * row_height
        bar_y = y + 20
        text = bar.text or (NO_VALUE if bar.value is None else (f"{bar.value:.0%}" if percent else _num(bar.value)))
        parts = [_text(0, y + 14, bar.label), _text(width, y + 14, text, "chart-value", "end")]
        parts.append(f'<rect x="0" y="{bar_y}" width="{width}" height="{bar_height}" rx="3" class="chart-track"/>')
        for share, css in ((bar.back, "chart-back"), (bar.value, "chart-bar")):
            if share is not None and share > 0:
                w = width * min(share / scale_max, 1.0)
                parts.append(f'<rect x="0" y="{bar_y}" width="{w:.1f}" height="{bar_height}" rx="3" class="{css}"/>')
        frame.parts.append(_link(bar.href, "".join(parts), f"{bar.label}: {text}"))
    return frame


def _describe(rows: Sequence[Sequence[str]]) -> str:
    return "; ".join(": ".join(str(cell) for cell in row) for row in rows) or "No data."


# --------------------------------------------------------------------------------------------------- columns


def column_chart(
    columns: Sequence[Column],
    *,
    title: str,
    desc: str = "",
    headers: Sequence[str] = ("", "count"),
    width: int = 560,
    height: int = 200,
    series: bool = False,
    marker_label: str = "",
    empty: str = "",
) -> Chart:
    """Vertical columns with their value above and their label below.

    ``series``: the columns are a sequence (weeks), so where the labels do not fit side by side only every few are
    written and zeros are left unwritten; otherwise (categories) every label is kept and turned. A ``highlight``ed
    column gets a band behind it (visible even at zero) labelled ``marker_label``. ``empty``: a message written
    across the plot, for a window with nothing in it.
    """
    rows = [(c.label, _num(c.value)) for c in columns]
    desc = desc or _describe(rows)

    def draw(width: int, variant: str) -> SafeString:
        frame = _columns(columns, width=width, height=height, series=series, marker_label=marker_label, empty=empty)
        return _svg(frame, title=title, desc=desc, css_class="chart-columns", variant=variant)

    return Chart(
        svg=draw(width, "wide"), narrow=draw(min(width, NARROW), "narrow"), title=title, headers=headers, rows=rows
    )


def _columns(
    columns: Sequence[Column], *, width: int, height: int, series: bool, marker_label: str, empty: str
) -> _Frame:
    top, left = (30 if marker_label else 20), 4
    slot = (width - left) / max(len(columns), 1)
    column_width = min(slot * 0.62, 56)
    big = slot >= 60
    label_css = "chart-label" if big else "chart-tick"
    widest = max((_text_width(c.label) for c in columns), default=0.0)
    step, turn = 1, 0.0
    if widest + 6 > slot:
        if series:  # every step-th label, the others left to the table and the tooltips
            step = math.ceil((widest + 10) / slot)
        else:
            turn = -40.0
    # Turned labels need the room their slant takes below the axis.
    bottom = 34 if not turn else 16 + round(widest * math.sin(math.radians(-turn)))
    height = height if not turn else height - 34 + bottom
    plot_height = height - bottom - top
    highest = max([c.value for c in columns] + [0]) or 1
    frame = _Frame(width, height)
    for index, column in enumerate(columns):
        if column.highlight:  # behind everything: a band across the plot, so that it shows even at zero
            x = left + index * slot
            frame.parts.append(
                f'<rect x="{x:.1f}" y="{top - 4}" width="{slot:.1f}" height="{plot_height + 4}" class="chart-current"/>'
            )
            if marker_label:
                frame.parts.append(_text(x + slot / 2, top - 10, marker_label, "chart-marker", "middle"))
    frame.parts.append(
        f'<line x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" class="chart-axis"/>'
    )
    for index, column in enumerate(columns):
        x = left + index * slot + (slot - column_width) / 2
        h = plot_height * column.value / highest
        y = height - bottom - h
        css = "chart-bar chart-highlight" if column.highlight else "chart-bar"
        label = f"{column.label}: {_num(column.value)}"
        parts = [f'<rect x="{x:.1f}" y="{y:.1f}" width="{column_width:.1f}" height="{h:.1f}" rx="2" class="{css}">']
        parts.append(f"<title>{escape(column.tooltip or label)}</title></rect>")
        if column.value or not series:
            parts.append(_text(x + column_width / 2, y - 5, _num(column.value), "chart-value", "middle"))
        if index % step == 0:
            centre, below = x + column_width / 2, height - bottom + 16
            if turn:
                parts.append(_text(centre + 4, below - 4, column.label, label_css, "end", rotate=turn))
            else:
                parts.append(_text(centre, below, column.label, label_css, "middle"))
        frame.parts.append(_link(column.href, "".join(parts), label))
    if empty:
        frame.parts.append(_text(width / 2, top + plot_height / 2, empty, "chart-empty", "middle"))
    return frame


# ------------------------------------------------------------------------------------------------------ line


def line_chart(
    points: Sequence[Point],
    *,
    title: str,
    target: float | None = None,
    baseline: float | None = None,
    unit: str = "",
    desc: str = "",
    width: int = 400,
    height: int = 190,
) -> Chart:
    """Readings over time as a line with dots, and the target (and baseline) as dashed horizontal lines."""
    ordered = sorted(points, key=lambda p: _as_datetime(p.at))
    rows = [(_day(p.at), f"{_num(p.value)} {unit}".strip()) for p in ordered]
    summary = f"{len(ordered)} readings" + (f"; latest {rows[-1][1]}" if rows else "")
    if target is not None:
        summary += f"; target {_num(target)} {unit}".rstrip()

    def draw(width: int, variant: str) -> SafeString:
        frame = _line(ordered, width=width, height=height, target=target, baseline=baseline, unit=unit)
        return _svg(frame, title=title, desc=desc or summary, css_class="chart-line-chart", variant=variant)

    return Chart(
        svg=draw(width, "wide"),
        narrow=draw(min(width, NARROW), "narrow"),
        title=title,
        headers=("measured", "value"),
        rows=rows,
    )


def _line(
    ordered: Sequence[Point], *, width: int, height: int, target: float | None, baseline: float | None, unit: str
) -> _Frame:
    left, right, top, bottom = 48, 12, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    frame = _Frame(width, height)
    values = [p.value for p in ordered] + [v for v in (target, baseline) if v is not None]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if low == high:
        low, high = low - 1, high + 1
    low, high, step = _nice_range(low, high, non_negative=min(values, default=0) >= 0)

    def y_of(value: float) -> float:
        return top + plot_h * (1 - (value - low) / (high - low))

    frame.parts.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" class="chart-axis"/>'
    )
    ticks = [low + step * i for i in range(round((high - low) / step) + 1)]
    for tick in ticks:
        frame.parts.append(_text(left - 6, y_of(tick) + 4, _num(round(tick, 2)), "chart-tick", "end"))
    for name, value, css in (("target", target, "chart-target"), ("baseline", baseline, "chart-baseline")):
        if value is not None:
            y = y_of(value)
            frame.parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" class="{css}"/>')
            frame.parts.append(_text(left + plot_w - 2, y - 4, f"{name} {_num(value)}", f"{css}-label", "end"))
    if ordered:
        start, end = _as_datetime(ordered[0].at), _as_datetime(ordered[-1].at)
        span = (end - start).total_seconds() or 1.0

        def x_of(at) -> float:
            return left + plot_w * ((_as_datetime(at) - start).total_seconds() / span if len(ordered) > 1 else 0.5)

        path = " ".join(f"{x_of(p.at):.1f},{y_of(p.value):.1f}" for p in ordered)
        frame.parts.append(f'<polyline points="{path}" class="chart-line"/>')
        for p in ordered:
            frame.parts.append(
                f'<circle cx="{x_of(p.at):.1f}" cy="{y_of(p.value):.1f}" r="3" class="chart-dot">'
                f"<title>{escape(_day(p.at))}: {escape(_num(p.value))} {escape(unit)}</title></circle>"
            )
        frame.parts.append(_text(left, height - 8, _day(ordered[0].at), "chart-tick"))
        if len(ordered) > 1:
            frame.parts.append(_text(left + plot_w, height - 8, _day(ordered[-1].at), "chart-tick", "end"))
    else:
        frame.parts.append(_text(left + 8, top + plot_h / 2, "No readings yet.", "chart-empty"))
    return frame


def _nice_range(low: float, high: float, *, non_negative: bool) -> tuple[float, float, float]:
    """``low``..``high`` widened to round numbers, and the step between its axis ticks (1, 2 or 5 times a power of
    ten, at most four steps), so that the axis reads 0, 2, 4, 6 rather than 0.68, 3, 5.32."""
    raw = (high - low) / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    nice_low, nice_high = math.floor(low / step) * step, math.ceil(high / step) * step
    if non_negative and nice_low < 0:
        nice_low = 0.0
    return float(nice_low), float(nice_high), float(step)


def _as_datetime(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime(value.year, value.month, value.day)  # noqa: DTZ001 (dates only compared with dates)


def _day(value: datetime | date) -> str:
    return f"{value:%d %b %Y}"


# ---------------------------------------------------------------------------------------------------- meter


def meter(value: float | None, back: float | None = None, *, label: str, width: int = 96) -> SafeString:
    """A small inline bar for tables and cards: ``value`` (say verified) over ``back`` (say done).

    Its ``aria-label`` says the numbers; tables show the same numbers as text next to it.
    """
    height = 10
    parts = [f'<rect x="0" y="0" width="{width}" height="{height}" rx="3" class="chart-track"/>']
    for share, css in ((back, "chart-back"), (value, "chart-bar")):
        if share:
            parts.append(
                f'<rect x="0" y="0" width="{width * min(share, 1.0):.1f}" height="{height}" rx="3" class="{css}"/>'
            )
    return mark_safe(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="meter" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{escape(label)}"><title>{escape(label)}</title>'
        + "".join(parts)
        + "</svg>"
    )
