"""How every chart looks: the wallets' colours (from the registry, the same on every chart),
the marks of the days the quality gate did not publish, sizes and fonts, and the rendering to
PNG and SVG with vl-convert (no browser)."""

from __future__ import annotations

import altair as alt
import vl_convert

from quality import verdicts
from reporting.charts import png
from tokenwatch import wallets

#: One colour per registered wallet, by its place in the registry (tokenwatch/wallets.py), so
#: Apple Pay is the same blue on every chart whatever wallets a chart shows.
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2", "#eeca3b",
           "#9d755d", "#ff9da6", "#bab0ac")
UNREGISTERED = "#7f7f7f"
WALLET_TITLE = "wallet"

#: What a day the gate did not publish looks like: a band behind the day, with its legend.
WITHHELD_LABEL = "withheld by the quality gate"
UNCHECKED_LABEL = "not yet checked by the quality gate"
DAY_MARKS = {verdicts.WITHHELD: (WITHHELD_LABEL, "#8c8c8c"),
             verdicts.UNCHECKED: (UNCHECKED_LABEL, "#d9d9d9")}
GATE_TITLE = None  # the labels say it all

WIDTH, HEIGHT = 620, 300  # one panel, in CSS pixels (PNG files are rendered at 2x)
PANEL_WIDTH = 300  # a panel of a row of several
FILE_SCALE = 2.0  # the PNG files: sharp on high-density screens
PREVIEW_SCALE = 1.0  # the PNG embedded in Dagster's metadata: small
FONT = "DejaVu Sans, Liberation Sans, Helvetica, Arial, sans-serif"


def wallet_name(wallet_id: str) -> str:
    """The wallet's display name from the registry; an unregistered id as it is."""
    try:
        return wallets.get(wallet_id).display_name
    except KeyError:
        return wallet_id


def wallet_scale(shown: list[str] | None = None) -> alt.Scale:
    """The colour scale of wallets by display name: the registered ones among ``shown`` (all
    of them when ``None``) in registry order, each in its own colour, then any unregistered
    name in grey."""
    registered = [(w.display_name, PALETTE[i % len(PALETTE)])
                  for i, w in enumerate(wallets.WALLETS)
                  if shown is None or w.display_name in shown]
    names = [name for name, _ in registered]
    extra = [name for name in (shown or []) if name not in names
             and name not in {w.display_name for w in wallets.WALLETS}]
    return alt.Scale(domain=names + extra,
                     range=[colour for _, colour in registered] + [UNREGISTERED] * len(extra))


def wallet_colour(shown: list[str] | None = None, title: str = WALLET_TITLE) -> alt.Color:
    return alt.Color("wallet:N", scale=wallet_scale(shown), title=title,
                     sort=wallet_scale(shown).domain)


def configure(chart: alt.TopLevelMixin) -> alt.TopLevelMixin:
    """Fonts, sizes and a white background, the same on every chart."""
    return (chart.configure(font=FONT, background="white", padding=12)
            .configure_title(fontSize=16, subtitleFontSize=12, subtitleColor="#555555",
                             anchor="start", offset=10)
            .configure_axis(labelFontSize=11, titleFontSize=12, labelLimit=220,
                            gridColor="#ececec")
            .configure_legend(labelFontSize=11, titleFontSize=12, labelLimit=260,
                              orient="right")
            .configure_view(stroke="#cccccc"))


def _vl_version() -> str | None:
    wanted = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    return wanted if wanted in vl_convert.get_vegalite_versions() else None


def spec(chart: alt.TopLevelMixin) -> dict:
    """The chart's Vega-Lite specification, data inlined."""
    return chart.to_dict()


def to_png(chart: alt.TopLevelMixin | dict, scale: float = FILE_SCALE) -> bytes:
    """The chart as a PNG, ``scale`` times its size in CSS pixels (recompressed: lossless)."""
    vl = chart if isinstance(chart, dict) else spec(chart)
    return png.compact(vl_convert.vegalite_to_png(vl, vl_version=_vl_version(), scale=scale))


def to_svg(chart: alt.TopLevelMixin | dict) -> str:
    vl = chart if isinstance(chart, dict) else spec(chart)
    return vl_convert.vegalite_to_svg(vl, vl_version=_vl_version())
