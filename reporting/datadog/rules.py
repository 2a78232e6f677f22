"""The rules a name, a tag or a text must pass before it leaves for Datadog.

Each check returns ``None`` when the input is fine, else the problem in words. A value that
looks like a card number (PAN) is never echoed back in a problem: only a redacted form is.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from reporting.datadog.catalog import CONTROL_METRICS, KPI_METRICS, PIPELINE_METRICS
from tokenwatch import pan
from tokenwatch.pan import find_pan_like

#: Datadog's own rule: a letter first, then ASCII letters, digits, '_' and '.', <= 200 chars.
DATADOG_METRIC = re.compile(r"[A-Za-z][A-Za-z0-9_.]{0,199}")
#: Ours on top of it: tokenwatch.<area>.<kpi>, lowercase.
KPI_NAME = re.compile(r"tokenwatch\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_.]*")
#: A tag as Datadog stores it (it lowercases tags, so we only accept lowercase ones).
TAG = re.compile(r"([a-z][a-z_]*):([a-z0-9][a-z0-9_.:/-]*)")
MAX_TAG = 200
#: Prefixes of our identifiers: token refs (tok-...) and card refs (cref-...).
IDENTIFIER_PREFIXES = ("tok-", "tok_", "cref-", "cref_")
REDACTED = "<PAN-like value redacted>"


def redact(text: str) -> str:
    """``text`` with every PAN-like run replaced, however it was written."""
    return pan.redact(text, REDACTED)


def metric_problem(name: object) -> str | None:
    if not isinstance(name, str):
        return f"the metric name must be a string, got {type(name).__name__}"
    if find_pan_like(name):
        return f"the metric name {redact(name)!r} contains a PAN-like number"
    if not DATADOG_METRIC.fullmatch(name):
        return (f"{name[:210]!r} is not a valid Datadog metric name: a letter first, then only "
                "ASCII letters, digits, '_' and '.', at most 200 characters")
    if not KPI_NAME.fullmatch(name):
        return f"{name!r} is not of the form tokenwatch.<area>.<kpi> (lowercase)"
    if name not in KPI_METRICS and name not in CONTROL_METRICS and name not in PIPELINE_METRICS:
        return (f"{name!r} is not in KPI_METRICS, CONTROL_METRICS nor PIPELINE_METRICS: declare "
                "a KPI in the dbt marts' yml (a column's config: meta: kpi:, see "
                "dbt_project/README.md), or a control's or the pipeline's metric in "
                "reporting/datadog/catalog.py, with its unit and description")
    return None


def tag_problem(tag: object, allowed: Collection[str]) -> str | None:
    if not isinstance(tag, str):
        return f"a tag must be a 'key:value' string, got {type(tag).__name__}"
    if find_pan_like(tag):
        return f"tag {redact(tag)!r} carries a PAN-like number: card numbers never leave"
    match = TAG.fullmatch(tag)
    if not match or len(tag) > MAX_TAG:
        return (f"tag {tag[:80]!r} is not 'key:value' in lowercase letters, digits and _ . : / - "
                f"(at most {MAX_TAG} characters)")
    key, value = match.groups()
    if key not in allowed:
        return f"tag key {key!r} is not allowed (allowed: {', '.join(sorted(allowed))})"
    if value.startswith(IDENTIFIER_PREFIXES):
        return (f"tag {tag!r} looks like a token or card reference: tags must have a bounded "
                "set of values")
    return None


def tags_problem(tags: Collection[object], allowed: Collection[str],
                 required: Collection[str] = ("env",)) -> str | None:
    """Every tag valid, one value per key at most, and the ``required`` keys present."""
    keys: list[str] = []
    for tag in tags:
        problem = tag_problem(tag, allowed)
        if problem:
            return problem
        keys.append(str(tag).split(":", 1)[0])
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        return f"tag key(s) {', '.join(repeated)} given more than once"
    missing = [k for k in required if k not in keys]
    if missing:
        return f"missing the required tag(s) {', '.join(k + ':...' for k in missing)}"
    return None
