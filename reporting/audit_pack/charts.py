"""The pack's two charts (altair, PNG by vl-convert, the look of ``reporting/charts/style.py``):
audit exceptions per day by type, and the automated review's verdict per day."""

from __future__ import annotations

from datetime import date

import altair as alt

from quality import verdicts
from reporting.charts import style

WIDTH, HEIGHT = 640, 220
REVIEW_COLOURS = {verdicts.PASSED: "#54a24b", verdicts.WITHHELD: "#e45756",
                  verdicts.UNCHECKED: style.DAY_MARKS[verdicts.UNCHECKED][1]}


def _x(days: list[date]) -> alt.X:
    return alt.X("day:O", scale=alt.Scale(domain=[d.isoformat() for d in days]),
                 title="day (UTC)",
                 axis=alt.Axis(labelAngle=0 if len(days) <= 10 else -45,
                               labelExpr="utcFormat(toDate(datum.value), '%a %d %b')"))


def exceptions_chart(days: list[date], per_day: list[tuple]) -> alt.TopLevelMixin:
    """``per_day``: (day, exception_type, findings), zeros included."""
    records = [{"day": d.isoformat(), "type": t, "findings": n} for d, t, n in per_day if n]
    total = sum(r["findings"] for r in records)
    subtitle = (f"{total} finding(s) in the period" if total
                else "no audit exception in the period")
    base = alt.Chart(alt.Data(values=records or [{"day": days[0].isoformat(), "type": "none",
                                                  "findings": 0}]))
    bars = base.mark_bar().encode(
        x=_x(days), y=alt.Y("sum(findings):Q", title="findings", axis=alt.Axis(tickMinStep=1)),
        color=alt.Color("type:N", title="exception type",
                        scale=alt.Scale(range=list(style.PALETTE))),
        tooltip=["day:O", "type:N", "findings:Q"])
    chart = bars.properties(width=WIDTH, height=HEIGHT, title=alt.Title(
        "Audit exceptions per day", subtitle=subtitle))
    return style.configure(chart)


def reviews_chart(days: list[date], reviews: list[tuple]) -> alt.TopLevelMixin:
    """``reviews``: (day, status, failed checks, ...) per day of the period."""
    records = [{"day": d.isoformat(), "status": s, "failed": f or "none"}
               for d, s, f, *_ in reviews]
    done = sum(1 for r in records if r["status"] != verdicts.UNCHECKED)
    statuses = [verdicts.PASSED, verdicts.WITHHELD, verdicts.UNCHECKED]
    chart = alt.Chart(alt.Data(values=records)).mark_rect(stroke="white", strokeWidth=2).encode(
        x=_x(days), y=alt.Y("status:N", title=None, scale=alt.Scale(domain=statuses)),
        color=alt.Color("status:N", title="review", scale=alt.Scale(
            domain=statuses, range=[REVIEW_COLOURS[s] for s in statuses])),
        tooltip=["day:O", "status:N", "failed:N"],
    ).properties(width=WIDTH, height=90, title=alt.Title(
        "Automated daily review (the quality gate's verdict)",
        subtitle=f"{done} of {len(records)} day(s) reviewed"))
    return style.configure(chart)


def render(days: list[date], per_day: list[tuple], reviews: list[tuple]) -> dict[str, bytes]:
    """File name -> PNG bytes."""
    return {"exceptions_by_day.png": style.to_png(exceptions_chart(days, per_day)),
            "reviews_by_day.png": style.to_png(reviews_chart(days, reviews))}
