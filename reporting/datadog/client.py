"""Where tokenwatch's Datadog calls go, decided in one place, and the configured client.

``resolve()`` picks the target from the environment, first match wins:

=========================  =====================================================================
``TOKENWATCH_DD_API_HOST``  explicit override, any ``TOKENWATCH_ENV``: that URL, ``DD_API_KEY``
                            (required) and ``DD_APP_KEY`` (optional). Tests and ad-hoc runs use it.
``TOKENWATCH_ENV=local``    the local stack's intake (``Stack.load().datadog_options()``).
``TOKENWATCH_ENV=prod``     Datadog: ``DD_API_KEY`` (required), ``DD_APP_KEY`` (needed for
                            dashboards and monitors), ``DD_SITE`` (default ``datadoghq.com``);
                            the API is ``https://api.<DD_SITE>``.
=========================  =====================================================================
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import datadog
from datadog import api

from tokenwatch import config

OVERRIDE = "TOKENWATCH_DD_API_HOST"
SITE = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)+")
TIMEOUT_S = 15
_LOCK = threading.RLock()


@dataclass(frozen=True)
class Target:
    options: dict[str, Any]  # keyword arguments for datadog.initialize
    source: str  # where they came from, for people


def _required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ValueError(f"{name} is not set: it is required to reach Datadog")
    return value


def _options(api_key: str, app_key: str | None, api_host: str) -> dict[str, Any]:
    return {"api_key": api_key, "app_key": app_key, "api_host": api_host.rstrip("/")}


def resolve() -> Target:
    override = os.environ.get(OVERRIDE, "").strip()
    if override:
        if not override.startswith(("http://", "https://")):
            raise ValueError(f"{OVERRIDE} must be an http(s) URL, got {override!r}")
        return Target(_options(_required("DD_API_KEY"), os.environ.get("DD_APP_KEY") or None,
                               override), f"{OVERRIDE} override")
    if config.env_name() == "local":
        from tokenwatch.stack_file import Stack

        return Target(Stack.load().datadog_options(), f"local stack ({Stack.path()})")
    site = os.environ.get("DD_SITE", "datadoghq.com").strip().lower()
    if not SITE.fullmatch(site):
        raise ValueError(f"DD_SITE must be a Datadog site such as datadoghq.eu, got {site!r}")
    return Target(_options(_required("DD_API_KEY"), os.environ.get("DD_APP_KEY") or None,
                           f"https://api.{site}"), f"Datadog (DD_SITE={site})")


def datadog_options() -> dict[str, Any]:
    """The ``datadog.initialize`` keyword arguments for this environment."""
    return resolve().options


@contextmanager
def connected(options: Mapping[str, Any]) -> Iterator[ModuleType]:
    """``datadog.api`` configured with ``options`` (errors raise, never muted) for the block.

    The package keeps its configuration in module globals, so calls hold a lock: two threads
    of one process cannot interleave targets."""
    missing = [key for key in ("api_key", "api_host") if not options.get(key)]
    if missing:
        raise ValueError(f"Datadog client options lack {', '.join(missing)}")
    with _LOCK:
        # a host name given: no probe of cloud metadata servers (we never attach one anyway)
        datadog.initialize(**{"timeout": TIMEOUT_S, "host_name": "tokenwatch",
                              "hostname_from_config": False, **options, "mute": False})
        # initialize() keeps an earlier key when given None: make the keys exactly these
        api._api_key = options["api_key"]
        api._application_key = options.get("app_key")
        api._api_host = options["api_host"]
        yield api
