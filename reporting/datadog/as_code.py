"""Dashboards and monitors as code: the JSON files in ``dashboards/`` and ``monitors/``, in
Datadog's v1 API format, pushed with the ``datadog`` package.

A dashboard is ours when its title matches and its description carries ``MARKER``; a monitor
when its name matches and it carries ``MANAGED_TAG`` (both are added on push). Ours are updated
in place (PUT), missing ones created (POST), and left alone when Datadog already holds what the
file says: pushing twice never duplicates. Objects of the same title that are not ours are not
touched. Every file is read and checked before the first call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from reporting.datadog.client import connected

HERE = Path(__file__).parent
FOLDERS = {"dashboard": HERE / "dashboards", "monitor": HERE / "monitors"}
TITLE = {"dashboard": "title", "monitor": "name"}
MARKER = ("Managed as code by tokenwatch (reporting/datadog/dashboards): "
          "changes made in Datadog are overwritten by `tokenwatch datadog push`.")
MANAGED_TAG = "managed-by:tokenwatch"


class Pushed(NamedTuple):
    kind: str  # dashboard | monitor
    title: str
    action: str  # created | updated | unchanged
    id: str | int


def _managed(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    body = dict(body)
    if kind == "dashboard":
        description = (body.get("description") or "").strip()
        if MARKER not in description:
            body["description"] = f"{description}\n\n{MARKER}".strip()
    else:
        body["tags"] = sorted({*body.get("tags", []), MANAGED_TAG})
    return body


def definitions(kind: str) -> list[dict[str, Any]]:
    """The bodies to push for ``kind`` (dashboard | monitor), in file-name order."""
    bodies: list[dict[str, Any]] = []
    for path in sorted(FOLDERS[kind].glob("*.json")):
        try:
            body = json.loads(path.read_text())
        except ValueError as exc:
            raise ValueError(f"{path} is not valid JSON: {exc}") from exc
        title = body.get(TITLE[kind]) if isinstance(body, dict) else None
        if not isinstance(title, str) or not title:
            raise ValueError(f"{path}: a {kind} needs a non-empty {TITLE[kind]!r}")
        if any(b[TITLE[kind]] == title for b in bodies):
            raise ValueError(f"{path}: another {kind} file has the {TITLE[kind]} {title!r}")
        bodies.append(_managed(kind, body))
    return bodies


def _ours(kind: str, obj: Mapping[str, Any]) -> bool:
    if kind == "dashboard":
        return MARKER in (obj.get("description") or "")
    return MANAGED_TAG in (obj.get("tags") or [])


def contains(have: Any, want: Any) -> bool:
    """True when ``have`` holds everything in ``want`` (Datadog adds ids and defaults)."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(
            k in have and contains(have[k], v) for k, v in want.items())
    if isinstance(want, list):
        return (isinstance(have, list) and len(have) == len(want)
                and all(contains(h, w) for h, w in zip(have, want, strict=True)))
    return have == want


def _existing(kind: str, resource: Any) -> dict[str, Any]:
    """Title -> id of the objects of ``kind`` that are ours (the oldest id when several)."""
    listed = resource.get_all()
    items = listed.get("dashboards", []) if kind == "dashboard" else listed
    ours: dict[str, Any] = {}
    for obj in sorted(items, key=lambda o: str(o["id"])):
        if _ours(kind, obj):
            ours.setdefault(obj.get(TITLE[kind]), obj["id"])
    return ours


def push(client_options: Mapping[str, Any]) -> list[Pushed]:
    """Create or update every dashboard and monitor defined here; return what happened."""
    if not client_options.get("app_key"):
        raise ValueError("no application key (DD_APP_KEY): Datadog needs one to manage "
                         "dashboards and monitors")
    wanted = {kind: definitions(kind) for kind in FOLDERS}
    done: list[Pushed] = []
    with connected(client_options) as dd:
        for kind, resource in (("dashboard", dd.Dashboard), ("monitor", dd.Monitor)):
            existing = _existing(kind, resource)
            for body in wanted[kind]:
                title = body[TITLE[kind]]
                ident = existing.get(title)
                if ident is None:
                    done.append(Pushed(kind, title, "created", resource.create(**body)["id"]))
                elif contains(resource.get(ident), body):
                    done.append(Pushed(kind, title, "unchanged", ident))
                else:
                    resource.update(ident, **body)
                    done.append(Pushed(kind, title, "updated", ident))
    return done
