"""Publishing the extracts to Tableau Server or Cloud with ``tableauserverclient``.

Signs in with a personal access token (``TOKENWATCH_TABLEAU_*``, tokenwatch/config.py), finds
the project by name among the top-level projects (creating it when missing), and publishes
each ``.hyper`` as a data source of the file's name in Overwrite mode: re-publishing replaces
the data source, never duplicates it. TSC uploads a file over 64 MB in chunks by itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import tableauserverclient as TSC  # noqa: N812 - the package's own spelling
from tableauserverclient.server.endpoint.exceptions import FailedSignInError, ServerResponseError

from tokenwatch import config


class TableauPublishError(RuntimeError):
    """Publishing failed; the message says where and why."""


@dataclass(frozen=True)
class Target:
    server_url: str
    site: str
    token_name: str
    token_secret: str
    project: str

    def __repr__(self) -> str:  # never the secret
        return f"Target({self.server_url!r}, site={self.site!r}, project={self.project!r})"


@dataclass(frozen=True)
class Published:
    name: str
    file: Path
    datasource_id: str
    project: str
    bytes: int


def configured() -> bool:
    """Whether ``TOKENWATCH_TABLEAU_SERVER_URL`` names a server to publish to."""
    return bool(config.settings().tableau_server_url)


def target(project: str | None = None) -> Target:
    """The configured server, site, token and project (``project`` overrides the setting)."""
    s = config.settings()
    missing = [config.env_var(name) for name in ("tableau_server_url", "tableau_token_name",
                                                 "tableau_token_secret") if not getattr(s, name)]
    if missing:
        raise TableauPublishError(f"Tableau is not configured: set {', '.join(missing)}")
    return Target(s.tableau_server_url.rstrip("/"), s.tableau_site, s.tableau_token_name,
                  config.secret(s.tableau_token_secret), project or s.tableau_project)


def _project(server: TSC.Server, name: str) -> TSC.ProjectItem:
    for project in TSC.Pager(server.projects):
        if project.name == name and not project.parent_id:
            return project
    return server.projects.create(TSC.ProjectItem(name, description="tokenwatch extracts"))


def publish(files: Sequence[Path], to: Target) -> list[Published]:
    """Publish every file to ``to``'s project, overwriting data sources of the same name."""
    logging.getLogger("tableau").setLevel(logging.WARNING)  # TSC logs every request at INFO
    server = TSC.Server(to.server_url, use_server_version=True, http_options={"timeout": 600})
    auth = TSC.PersonalAccessTokenAuth(to.token_name, to.token_secret, site_id=to.site)
    try:
        server.auth.sign_in(auth)
    except FailedSignInError as exc:
        raise TableauPublishError(
            f"Tableau at {to.server_url} refused the personal access token {to.token_name!r} "
            f"for site {to.site or '(default)'!r} ({exc.code} {exc.summary}): check "
            f"{config.env_var('tableau_token_name')}, {config.env_var('tableau_token_secret')} "
            f"and {config.env_var('tableau_site')}") from None
    published = []
    try:
        project = _project(server, to.project)
        for file in files:
            file = Path(file)
            item = TSC.DatasourceItem(project.id, name=file.stem)
            try:
                done = server.datasources.publish(item, str(file),
                                                  TSC.Server.PublishMode.Overwrite)
            except ServerResponseError as exc:
                raise TableauPublishError(f"Tableau refused {file.name} in project "
                                          f"{to.project!r}: {exc.code} {exc.summary}: "
                                          f"{exc.detail}") from None
            published.append(Published(done.name, file, done.id, to.project,
                                       file.stat().st_size))
    finally:
        server.auth.sign_out()
    return published
