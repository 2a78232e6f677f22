"""A chart for any query's answer (the reports API's ``Accept: image/png``): columns and rows
in, a PNG out.

The metrics are the columns named in ``metric_units``; a time column (``metric_time`` or
``metric_time__<grain>``) makes it a line chart over time, coloured by the first other
dimension; without one it is a bar chart over the first dimension (the second, if any, side by
side in colours). Several metrics: one panel each, under one title. Wallet ids are drawn with
their registry names and colours, as on every other chart. Nothing to draw (no rows, no metric
column, only nulls) is a ``ValueError`` saying which.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal

import altair as alt

from reporting.charts import style
from tokenwatch import wallets

TIME_COLUMN = re.compile(r"metric_time(?:__(?P<grain>[a-z_]+))?")
#: How a unit reads on an axis (others as they are), and the axis format of fractions.
UNIT_LABELS = {"fraction": "%", "milliseconds": "ms", "seconds": "s"}
TIME_FORMATS = {"hour": "%d %b %H:%M", "day": "%a %d %b", "week": "%d %b %Y",
                "month": "%b %Y", "quarter": "%b %Y", "year": "%Y"}
MAX_TICKS = 12  # ticks at the answer's own times, at most this many
ROW = "row"


def _plain(value):
    """A value as JSON has it: numbers as floats, times as ISO text (UTC when naive)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, Decimal | int | float):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat() + ("Z" if value.tzinfo is None else "")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _metric(value, column: str):
    value = _plain(value)
    if value is not None and not isinstance(value, float):
        raise ValueError(f"metric {column!r} has a value that is not a number: {value!r}")
    return value


def _cell(column: str, value, metric_units: dict[str, str], time: str | None):
    """A metric as a number, the time column as ISO text, any other dimension as a label."""
    if column in metric_units:
        return _metric(value, column)
    if column == time or value is None:
        return _plain(value)
    return str(_plain(value))


def _axis_title(metric: str, unit: str) -> str:
    return f"{metric} ({UNIT_LABELS.get(unit, unit)})"


def _y(field: str, metric: str, unit: str, *, zero: bool = True) -> alt.Y:
    axis = alt.Axis(format=".1%") if unit == "fraction" else alt.Axis()
    return alt.Y(f"{field}:Q", title=_axis_title(metric, unit), axis=axis,
                 scale=alt.Scale(zero=zero, padding=0 if zero else 12))


def _colour(field: str, column: str, values: list[str]) -> alt.Color:
    names = [w.display_name for w in wallets.WALLETS]
    if values and all(v in names for v in values):
        scale = style.wallet_scale(values)
        return alt.Color(f"{field}:N", title=column, scale=scale, sort=scale.domain)
    return alt.Color(f"{field}:N", title=column, sort=None)


def _check(columns: list[str], rows: list[tuple], metric_units: dict[str, str]) -> list[str]:
    if len(set(columns)) != len(columns):
        raise ValueError(f"columns must be unique: {columns}")
    for i, row in enumerate(rows):
        if len(row) != len(columns):
            raise ValueError(f"row {i} has {len(row)} values for {len(columns)} columns")
    metrics = [c for c in columns if c in metric_units]
    if not metrics:
        raise ValueError(f"nothing to draw: none of the columns ({', '.join(columns) or 'none'})"
                         f" is a metric of metric_units ({', '.join(metric_units) or 'none'})")
    if not rows:
        raise ValueError("nothing to draw: the answer has no rows")
    return metrics


def rows_chart(columns: list[str], rows: list[tuple], *, metric_units: dict[str, str],
               title: str) -> alt.TopLevelMixin:
    """The chart of ``rows`` (see the module's doc), configured like every other chart."""
    metrics = _check(list(columns), rows, metric_units)
    time = next((c for c in columns if TIME_COLUMN.fullmatch(c)), None)
    dims = [c for c in columns if c not in metric_units and c != time]
    field = {c: f"c{i}" for i, c in enumerate(columns)}  # safe field names: no dots, no spaces
    records = [{ROW: n + 1, **{field[c]: _cell(c, v, metric_units, time)
                               for c, v in zip(columns, row, strict=True)}}
               for n, row in enumerate(rows)]
    for dim in dims:  # wallet ids read as the registry's names, in the registry's colours
        ids = _values(records, field[dim])
        if ids and all(v in wallets.wallet_ids() for v in ids):
            for record in records:
                if record[field[dim]] is not None:
                    record[field[dim]] = style.wallet_name(record[field[dim]])
    drawn = [m for m in metrics if any(r[field[m]] is not None for r in records)]
    if not drawn:
        raise ValueError(f"nothing to draw: every value of {', '.join(metrics)} is null")
    panels = [_line(records, field, time, dims, m, metric_units[m]) if time else
              _bar(records, field, dims, m, metric_units[m]) for m in drawn]
    chart = panels[0] if len(panels) == 1 else alt.vconcat(*panels)
    return style.configure(chart.properties(title=alt.TitleParams(title)))


def _values(records: list[dict], key: str) -> list[str]:
    return list(dict.fromkeys(r[key] for r in records if r[key] is not None))


def _epoch_ms(iso: str) -> int:
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _ticks(times: list[str]) -> list[int]:
    """A tick at each time of the answer (every n-th when there are many): never a tick
    between two of a grain's steps, such as noon on a daily chart."""
    stamps = sorted({_epoch_ms(t) for t in times})
    step = -(-len(stamps) // MAX_TICKS)
    return stamps[::step]


def _line(records, field, time, dims, metric, unit) -> alt.Chart:
    grain = (TIME_COLUMN.fullmatch(time).group("grain") or "day")
    encodings = {}
    if dims:
        encodings["color"] = _colour(field[dims[0]], dims[0], _values(records, field[dims[0]]))
    if len(dims) > 1:
        encodings["detail"] = [alt.Detail(f"{field[d]}:N") for d in dims[1:]]
    data = alt.Data(values=[r for r in records if r[field[metric]] is not None])
    return alt.Chart(data).mark_line(point=True, strokeWidth=2.5).encode(
        x=alt.X(f"{field[time]}:T", title=f"{time} (UTC)", scale=alt.Scale(type="utc"),
                axis=alt.Axis(format=TIME_FORMATS.get(grain), labelAngle=0,
                              values=_ticks(_values(records, field[time])))),
        y=_y(field[metric], metric, unit, zero=False), **encodings,
    ).properties(width=style.WIDTH, height=style.HEIGHT)


def _bar(records, field, dims, metric, unit) -> alt.Chart:
    data = alt.Data(values=[r for r in records if r[field[metric]] is not None])
    if not dims:
        x = alt.X(f"{ROW}:O", title=ROW, axis=alt.Axis(labelAngle=0))
        encodings = {}
    else:
        x = alt.X(f"{field[dims[0]]}:N", title=dims[0], sort=None, axis=alt.Axis(labelAngle=0))
        by = dims[1] if len(dims) > 1 else dims[0]
        encodings = {"color": _colour(field[by], by, _values(records, field[by]))}
        if len(dims) > 1:
            encodings["xOffset"] = alt.XOffset(f"{field[by]}:N", sort=None)
    return alt.Chart(data).mark_bar().encode(
        x=x, y=_y(field[metric], metric, unit), **encodings,
    ).properties(width=style.WIDTH, height=style.HEIGHT)


def chart_for_rows(columns: list[str], rows: list[tuple], *, metric_units: dict[str, str],
                   title: str) -> bytes:
    """``rows`` (of ``columns``) drawn as a PNG: a line chart over the time column if there is
    one, else a bar chart; ``ValueError`` when there is nothing to draw."""
    return style.to_png(rows_chart(columns, rows, metric_units=metric_units, title=title))
