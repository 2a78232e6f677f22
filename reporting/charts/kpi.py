"""The main KPIs as charts: success rate by wallet over days, the provisioning funnel, latency
percentiles, error rates and token states over time.

Every chart over days marks the days the quality gate did not publish (``quality/verdicts.py``)
with a band behind the day and a legend saying why ("withheld by the quality gate", or "not
yet checked by the quality gate"); each point's record carries its day's ``gate`` status too, so
no reader of the chart or of its data takes a withheld day for a published one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

import altair as alt

from quality import verdicts
from reporting.charts import marts, style


@dataclass
class KpiChart:
    """One chart: its file name, title, the Vega-Lite chart and the records it draws."""

    name: str
    title: str
    chart: alt.TopLevelMixin
    records: list[dict]
    gate: dict[str, str] = field(default_factory=dict)  # ISO day -> status, days not passed

    def spec(self) -> dict:
        return style.spec(self.chart)

    def png(self, scale: float = style.FILE_SCALE) -> bytes:
        return style.to_png(self.chart, scale)

    def svg(self) -> str:
        return style.to_svg(self.chart)


def every_day(records: list[dict]) -> list[str]:
    """Every day from the first to the last of ``records`` (ISO), gaps included."""
    days = sorted({r["day"] for r in records})
    if not days:
        return []
    first, last = date.fromisoformat(days[0]), date.fromisoformat(days[-1])
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def gate_status(wh, days: list[str]) -> dict[str, str]:
    """The gate's status of each of ``days`` that was not published (withheld or
    unchecked)."""
    found = verdicts.latest(wh, [date.fromisoformat(d) for d in days])
    return {day.isoformat(): v.status for day, v in found.items() if not v.published}


def _day_axis(days: list[str]) -> alt.X:
    return alt.X("day:O", scale=alt.Scale(domain=days), title="day (UTC)",
                 axis=alt.Axis(labelExpr="utcFormat(toDate(datum.value), '%a %d %b')",
                               labelAngle=0 if len(days) <= 10 else -45))


def _gate_band(days: list[str], gate: dict[str, str]) -> alt.Chart | None:
    """A band behind each day not published, its ``fill`` legend naming why."""
    marks = [(day, *style.DAY_MARKS[gate[day]]) for day in days if gate.get(day)
             in style.DAY_MARKS]
    if not marks:
        return None
    shown = [status for status in (verdicts.WITHHELD, verdicts.UNCHECKED)
             if any(gate.get(d) == status for d in days)]
    labels = [style.DAY_MARKS[s][0] for s in shown]
    colours = [style.DAY_MARKS[s][1] for s in shown]
    values = [{"day": day, "gate": label} for day, label, _ in marks]
    return alt.Chart(alt.Data(values=values)).mark_rect(opacity=0.45).encode(
        x=_day_axis(days),
        fill=alt.Fill("gate:N", scale=alt.Scale(domain=labels, range=colours),
                      legend=alt.Legend(title=style.GATE_TITLE, symbolType="square",
                                        orient="bottom")))


def _with_gate(records: list[dict], gate: dict[str, str]) -> list[dict]:
    return [{**r, "gate": gate.get(r["day"], verdicts.PASSED)} for r in records]


def _day_panel(records: list[dict], days: list[str], gate: dict[str, str], y: alt.Y,
               mark: Callable[[alt.Chart], alt.Chart], colour: alt.Color,
               width: int = style.WIDTH, **encodings) -> alt.LayerChart | alt.Chart:
    lines = mark(alt.Chart(alt.Data(values=_with_gate(records, gate)))).encode(
        x=_day_axis(days), y=y, color=colour, **encodings)
    band = _gate_band(days, gate)
    layered = alt.layer(band, lines) if band is not None else lines
    return layered.properties(width=width, height=style.HEIGHT)


def _lines(chart: alt.Chart) -> alt.Chart:
    return chart.mark_line(point=alt.OverlayMarkDef(size=50), strokeWidth=2.5)


def _title(text: str, *subtitle: str) -> alt.TitleParams:
    return alt.TitleParams(text, subtitle=[s for s in subtitle if s])


def _gate_note(gate: dict[str, str]) -> str:
    withheld = sorted(d for d, s in gate.items() if s == verdicts.WITHHELD)
    unchecked = sorted(d for d, s in gate.items() if s == verdicts.UNCHECKED)
    parts = ([f"withheld by the quality gate: {', '.join(withheld)}"] if withheld else []) + (
        [f"not yet checked by the quality gate: {len(unchecked)} day(s)"] if unchecked else [])
    return "; ".join(parts)


def _wallets(records: list[dict]) -> list[str]:
    return sorted({r["wallet"] for r in records})


def success_rate_chart(wh, relation: marts.Relation) -> KpiChart:
    records = marts.success_rate(wh.query, relation)
    days = every_day(records)
    gate = gate_status(wh, days)
    title = "Provision success rate by wallet"
    panel = _day_panel(
        records, days, gate,
        alt.Y("success_rate:Q", title="provision success rate (% of requests)",
              axis=alt.Axis(format=".0%"), scale=alt.Scale(zero=False, padding=12)),
        _lines, style.wallet_colour(_wallets(records)))
    chart = panel.properties(title=_title(
        title, "successes / requests per wallet and day (wallet_provisioning_daily)",
        _gate_note(gate)))
    return KpiChart("success_rate", title, style.configure(chart), records, gate)


def funnel_chart(wh, relation: marts.Relation) -> KpiChart:
    records = marts.funnel(wh.query, relation)
    title = "Provisioning funnel by wallet"
    order = [r["state"] for r in sorted(records, key=lambda r: r["step"])]
    steps = list(dict.fromkeys(order))
    withheld = sorted(d.isoformat() for d, v in verdicts.latest(wh).items()
                      if v.status == verdicts.WITHHELD)
    note = (f"all days, withheld ones included ({', '.join(withheld)}): the mart is not per day"
            if withheld else "")
    chart = alt.Chart(alt.Data(values=records)).mark_bar().encode(
        x=alt.X("state:N", sort=steps, title="funnel step (lifecycle state reached)",
                axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset("wallet:N", sort=style.wallet_scale(_wallets(records)).domain),
        y=alt.Y("share:Q", title="tokens reaching the step (% of requested)",
                axis=alt.Axis(format=".0%")),
        color=style.wallet_colour(_wallets(records)),
    ).properties(width=style.WIDTH + 180, height=style.HEIGHT, title=_title(
        title, "tokens that reached each step / tokens requested, per wallet "
               "(provisioning_funnel)", note))
    return KpiChart("funnel", title, style.configure(chart), records, {})


def latency_chart(wh, relation: marts.Relation) -> KpiChart:
    records = marts.latency(wh.query, relation)
    days = every_day(records)
    gate = gate_status(wh, days)
    title = "API latency percentiles by wallet"
    colour = style.wallet_colour(_wallets(records))
    panels = [_day_panel([r for r in records if r["percentile"] == p], days, gate,
                         alt.Y("latency_ms:Q", title=f"{p} latency (ms)"), _lines, colour,
                         width=style.PANEL_WIDTH).properties(title=p)
              for p in marts.PERCENTILES]
    chart = alt.hconcat(*panels).properties(title=_title(
        title, "API Gateway latency per wallet and day, milliseconds (wallet_service_daily)",
        _gate_note(gate)))
    return KpiChart("latency", title, style.configure(chart), records, gate)


def error_rate_chart(wh, relation: marts.Relation) -> KpiChart:
    records = marts.error_rate(wh.query, relation)
    days = every_day(records)
    gate = gate_status(wh, days)
    title = "API error rate by wallet"
    colour = style.wallet_colour(_wallets(records))
    names = {"4xx": "client errors (4xx)", "5xx": "server errors (5xx)"}
    panels = [_day_panel([r for r in records if r["class"] == kind], days, gate,
                         alt.Y("error_rate:Q", title=f"{kind} error rate (% of API requests)",
                               axis=alt.Axis(format=".1%")), _lines, colour,
                         width=style.PANEL_WIDTH + 60).properties(title=names[kind])
              for kind in names]
    chart = alt.hconcat(*panels).properties(title=_title(
        title, "errors / API requests per wallet and day (wallet_service_daily)",
        _gate_note(gate)))
    return KpiChart("error_rate", title, style.configure(chart), records, gate)


def states_chart(wh, relation: marts.Relation) -> KpiChart:
    records = marts.states(wh.query, relation)
    days = every_day(records)
    gate = gate_status(wh, days)
    title = "Tokens by lifecycle state over time"
    order = list(dict.fromkeys(r["state"] for r in sorted(records,
                                                          key=lambda r: r["state_order"])))
    colour = alt.Color("state:N", sort=order, title="state",
                       scale=alt.Scale(domain=order, scheme="tableau10"),
                       legend=alt.Legend(symbolType="square"))
    panel = _day_panel(records, days, gate,
                       alt.Y("tokens:Q", title="tokens at the day's end (tokens)", stack=True),
                       lambda c: c.mark_area(opacity=0.85, interpolate="monotone"), colour,
                       order=alt.Order("state_order:Q"))
    chart = panel.properties(title=_title(
        title, "tokens in each state at the end of the day (UTC), all wallets "
               "(token_state_daily)", _gate_note(gate)))
    return KpiChart("token_states", title, style.configure(chart), records, gate)


#: Every KPI chart, in the order they are shown.
CHARTS: tuple[Callable[..., KpiChart], ...] = (success_rate_chart, funnel_chart,
                                               latency_chart, error_rate_chart, states_chart)


def kpi_charts(wh, relation: marts.Relation) -> list[KpiChart]:
    """Every KPI chart of the warehouse ``wh`` (anything with ``query``), its marts named by
    ``relation``."""
    return [make(wh, relation) for make in CHARTS]
