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

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import datadog
from datadog import api

from tokenwatch import config

OVERRIDE = config.env_var("dd_api_host")  # TOKENWATCH_DD_API_HOST
SITE = config.DD_SITE  # what DD_SITE must match (the settings check it when read)
TIMEOUT_S = 15
_LOCK = threading.RLock()


@dataclass(frozen=True)
class Target:
    options: dict[str, Any]  # keyword arguments for datadog.initialize
    source: str  # where they came from, for people


def _required(value, name: str) -> str:
    if value is None:
        raise ValueError(f"{name} is not set: it is required to reach Datadog")
    return config.secret(value)


def _options(api_key: str, app_key: str | None, api_host: str) -> dict[str, Any]:
    return {"api_key": api_key, "app_key": app_key, "api_host": api_host.rstrip("/")}


def resolve() -> Target:
    settings = config.settings()  # DD_SITE and the override are checked when read
    override = settings.dd_api_host
    if override:
        return Target(_options(_required(settings.dd_api_key, "DD_API_KEY"),
                               config.secret(settings.dd_app_key), override),
                      f"{OVERRIDE} override")
    if settings.env == "local":
        from tokenwatch.stack_file import Stack

        return Target(Stack.load().datadog_options(), f"local stack ({Stack.path()})")
    site = settings.dd_site
    return Target(_options(_required(settings.dd_api_key, "DD_API_KEY"),
                           config.secret(settings.dd_app_key), f"https://api.{site}"),
                  f"Datadog (DD_SITE={site})")


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
