"""A local Tableau Server: the REST calls ``tableauserverclient`` makes to publish extracts,
checked as Tableau checks them, with what it accepted kept for tests and the demo.

Endpoints (XML in the ``http://tableau.com/api`` namespace, under ``/api/<version>``; a version
above ours is a 404, as on a Tableau Server that does not speak it):

* ``GET serverInfo`` (no sign-in): product and REST API version, for TSC's version negotiation;
* ``POST auth/signin`` with a personal access token -> a credentials token (the
  ``X-Tableau-Auth`` header of every later call), the site's id and the user's; a wrong token
  name, secret or site -> 401 ``401001``; ``POST auth/signout`` ends the token;
* ``GET|POST sites/<site>/projects`` (paged: ``pageSize``, ``pageNumber``; a second project of
  one name under one parent -> 409 ``409006``);
* ``POST sites/<site>/fileUploads``, ``PUT sites/<site>/fileUploads/<id>``: a chunked upload;
* ``POST sites/<site>/datasources?datasourceType=hyper&overwrite=true`` with the file in its
  multipart body or ``&uploadSessionId=<id>``: a ``.hyper`` must be one (its ``Hyper`` magic),
  the project must exist, a name taken in the project without ``overwrite`` -> 409 ``409004``.

Without ``X-Tableau-Auth``, or with a token that is not signed in -> 401 ``401002``. Published
files are kept under ``store/<project>/<name>.<type>`` (``StandIn.datasources`` says where) and
every accepted call is in ``StandIn.calls``. Run it with ``TableauServerThread``, or as
``python -m sandbox.tableau_server --store DIR --token-name N --token-secret S``.
"""

from __future__ import annotations

import argparse
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree as ET

from sandbox.server_thread import ServerThread

NS = "http://tableau.com/api"
PRODUCT_VERSION, BUILD, API_VERSION = "2024.2.0", "20242.24.0613.0835", "3.23"
HYPER_MAGIC = b"Hyper"
DATASOURCE_TYPES = {"hyper", "tds", "tdsx", "tde"}
SINGLE_REQUEST_LIMIT = 64 * 1024 * 1024  # above it Tableau wants a chunked upload
ROUTE = re.compile(r"/api/(?P<version>\d+\.\d+)/(?P<rest>.*)")


class Fault(Exception):
    """A Tableau error response: HTTP status, Tableau's error code, summary and detail."""

    def __init__(self, status: int, code: str, summary: str, detail: str):
        super().__init__(f"{code}: {summary}: {detail}")
        self.status, self.code, self.summary, self.detail = status, code, summary, detail


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def _xml(tag: str | None = None, **attrs: str) -> tuple[ET.Element, ET.Element | None]:
    root = ET.Element("tsResponse", xmlns=NS)
    return root, (ET.SubElement(root, tag, {k: v for k, v in attrs.items() if v is not None})
                  if tag else None)


def error_body(fault: Fault) -> bytes:
    root, error = _xml("error", code=fault.code)
    ET.SubElement(error, "summary").text = fault.summary
    ET.SubElement(error, "detail").text = fault.detail
    return ET.tostring(root, xml_declaration=True, encoding="utf-8")


def multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The parts of a ``multipart/mixed`` body: name -> (filename, bytes)."""
    found = re.search(r'boundary="?([^";]+)"?', content_type or "")
    if not content_type.startswith("multipart/") or not found:
        raise Fault(400, "400000", "Bad Request", "expected a multipart/mixed body")
    delimiter = b"--" + found.group(1).encode()
    parts = {}
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            raise Fault(400, "400000", "Bad Request", "a multipart part has no headers")
        disposition = next((line for line in head.decode("latin-1").split("\r\n")
                            if line.lower().startswith("content-disposition")), "")
        name = re.search(r'\bname="([^"]*)"', disposition)
        filename = re.search(r'\bfilename="([^"]*)"', disposition)
        if name:
            parts[name.group(1)] = (filename.group(1) if filename else None,
                                    data.removesuffix(b"\r\n"))
    return parts


def _payload(parts: dict, tag: str) -> ET.Element:
    if "request_payload" not in parts:
        raise Fault(400, "400000", "Bad Request", "the request_payload part is missing")
    try:
        element = ET.fromstring(parts["request_payload"][1]).find(tag)
    except ET.ParseError as exc:
        raise Fault(400, "400000", "Bad Request", f"request_payload is not XML: {exc}") from None
    if element is None:
        raise Fault(400, "400000", "Bad Request", f"request_payload has no <{tag}>")
    return element


@dataclass
class Datasource:
    id: str
    name: str
    project_id: str
    type: str
    path: Path
    created_at: str
    updated_at: str
    publishes: int = 1


@dataclass
class StandIn:
    """The server's state: one site, one user, one personal access token."""

    store: Path
    token_name: str
    token_secret: str
    site: str = ""  # the site's content URL ("" is the default site)
    site_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    user_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    projects: dict[str, dict] = field(default_factory=dict)  # id -> {name, parent_id, ...}
    datasources: dict[str, Datasource] = field(default_factory=dict)
    calls: list[dict] = field(default_factory=list)  # every accepted call, oldest first
    _tokens: set[str] = field(default_factory=set)
    _uploads: dict[str, Path] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        self.store = Path(self.store)
        (self.store / ".uploads").mkdir(parents=True, exist_ok=True)
        self.add_project("Default", description="The default project")

    def add_project(self, name: str, parent_id: str | None = None, description: str = "") -> dict:
        project = {"id": str(uuid.uuid4()), "name": name, "parent_id": parent_id,
                   "description": description}
        self.projects[project["id"]] = project
        return project

    def project_named(self, name: str) -> dict | None:
        return next((p for p in self.projects.values() if p["name"] == name), None)

    # -- dispatch ----------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict, headers: dict,
               body: bytes) -> tuple[int, bytes]:
        match = ROUTE.fullmatch(path.rstrip("/"))
        if not match or _version(match["version"]) > _version(API_VERSION):
            raise Fault(404, "404000", "Resource Not Found",
                        f"{method} {path} is not an endpoint of REST API {API_VERSION}")
        parts = match["rest"].split("/")
        if parts == ["serverInfo"] and method == "GET":
            self.calls.append({"call": "server_info", "version": match["version"]})
            return 200, self._server_info()
        if parts == ["auth", "signin"] and method == "POST":
            return 200, self._sign_in(body)
        token = headers.get("x-tableau-auth")
        if token not in self._tokens:
            raise Fault(401, "401002", "Unauthorized Access",
                        "Invalid authentication credentials were provided.")
        if parts == ["auth", "signout"] and method == "POST":
            with self._lock:
                self._tokens.discard(token)
            self.calls.append({"call": "signout"})
            return 204, b""
        if len(parts) < 3 or parts[0] != "sites" or parts[1] != self.site_id:
            raise Fault(404, "404000", "Resource Not Found", f"no such endpoint: {method} {path}")
        resource, rest = parts[2], parts[3:]
        if resource == "projects" and not rest:
            if method == "GET":
                return 200, self._projects(query)
            if method == "POST":
                return 201, self._create_project(body, query)
        if resource == "fileUploads":
            if method == "POST" and not rest:
                return 201, self._initiate_upload()
            if method == "PUT" and len(rest) == 1:
                return 200, self._append_upload(rest[0], headers, body)
        if resource == "datasources" and not rest and method == "POST":
            return 201, self._publish(query, headers, body)
        raise Fault(405 if resource in ("projects", "fileUploads", "datasources") else 404,
                    "405000" if resource in ("projects", "fileUploads", "datasources")
                    else "404000", "Method Not Allowed", f"{method} {path} is not served here")

    # -- endpoints ---------------------------------------------------------------------------
    def _server_info(self) -> bytes:
        root, info = _xml("serverInfo")
        ET.SubElement(info, "productVersion", build=BUILD).text = PRODUCT_VERSION
        ET.SubElement(info, "restApiVersion").text = API_VERSION
        return ET.tostring(root)

    def _sign_in(self, body: bytes) -> bytes:
        try:
            credentials = ET.fromstring(body).find("credentials")
        except ET.ParseError:
            credentials = None
        if credentials is None:
            raise Fault(400, "400000", "Bad Request", "the body has no <credentials>")
        site = credentials.find("site")
        given = (credentials.get("personalAccessTokenName"),
                 credentials.get("personalAccessTokenSecret"),
                 site.get("contentUrl") if site is not None else None)
        if given != (self.token_name, self.token_secret, self.site):
            raise Fault(401, "401001", "Signin Error",
                        "Error signing in to Tableau Server")
        token = uuid.uuid4().hex
        with self._lock:
            self._tokens.add(token)
        self.calls.append({"call": "signin", "token_name": self.token_name})
        root, cred = _xml("credentials", token=token, estimatedTimeToExpiration="365:22:12")
        ET.SubElement(cred, "site", id=self.site_id, contentUrl=self.site)
        ET.SubElement(cred, "user", id=self.user_id)
        return ET.tostring(root)

    def _project_element(self, parent: ET.Element, project: dict) -> None:
        element = ET.SubElement(parent, "project", {
            "id": project["id"], "name": project["name"],
            "description": project["description"], "contentPermissions": "ManagedByOwner",
            "topLevelProject": "false" if project["parent_id"] else "true",
            "writeable": "true", **({"parentProjectId": project["parent_id"]}
                                    if project["parent_id"] else {})})
        ET.SubElement(element, "owner", id=self.user_id)

    def _projects(self, query: dict) -> bytes:
        try:
            size = int(query.get("pageSize", ["100"])[0])
            number = int(query.get("pageNumber", ["1"])[0])
        except ValueError:
            raise Fault(400, "400006", "Bad Request", "pageSize and pageNumber are integers") \
                from None
        if not 1 <= size <= 1000 or number < 1:
            raise Fault(400, "400006", "Bad Request",
                        "pageSize must be 1-1000 and pageNumber at least 1")
        projects = sorted(self.projects.values(), key=lambda p: p["name"])
        self.calls.append({"call": "list_projects", "page": number, "page_size": size})
        root, _ = _xml("pagination", pageNumber=str(number), pageSize=str(size),
                                totalAvailable=str(len(projects)))
        listed = ET.SubElement(root, "projects")
        for project in projects[(number - 1) * size:number * size]:
            self._project_element(listed, project)
        return ET.tostring(root)

    def _create_project(self, body: bytes, query: dict) -> bytes:
        try:
            element = ET.fromstring(body).find("project")
        except ET.ParseError:
            element = None
        if element is None or not element.get("name"):
            raise Fault(400, "400000", "Bad Request", "the body has no <project name=...>")
        name, parent = element.get("name"), element.get("parentProjectId")
        with self._lock:
            if parent and parent not in self.projects:
                raise Fault(404, "404005", "Resource Not Found", f"project {parent} not found")
            if any(p["name"] == name and p["parent_id"] == parent
                   for p in self.projects.values()):
                raise Fault(409, "409006", "Resource Conflict",
                            f"A project named '{name}' already exists here.")
            project = self.add_project(name, parent, element.get("description") or "")
        self.calls.append({"call": "create_project", "name": name})
        root, _ = _xml()
        self._project_element(root, project)
        return ET.tostring(root)

    def _initiate_upload(self) -> bytes:
        session = f"{uuid.uuid4().int % 10**12}:{uuid.uuid4().hex}-0:0"
        path = self.store / ".uploads" / uuid.uuid4().hex
        path.write_bytes(b"")
        with self._lock:
            self._uploads[session] = path
        self.calls.append({"call": "initiate_upload", "session": session})
        return ET.tostring(_xml("fileUpload", uploadSessionId=session, fileSize="0")[0])

    def _append_upload(self, session: str, headers: dict, body: bytes) -> bytes:
        path = self._uploads.get(session)
        if path is None:
            raise Fault(404, "404008", "Resource Not Found", f"upload session {session} "
                        "not found")
        parts = multipart(headers.get("content-type", ""), body)
        if "tableau_file" not in parts:
            raise Fault(400, "400000", "Bad Request", "the tableau_file part is missing")
        with self._lock, path.open("ab") as fh:
            fh.write(parts["tableau_file"][1])
        size = path.stat().st_size
        self.calls.append({"call": "append_upload", "session": session,
                           "bytes": len(parts["tableau_file"][1])})
        return ET.tostring(_xml("fileUpload", uploadSessionId=session,
                                fileSize=str(size // (1024 * 1024)))[0])

    def _publish(self, query: dict, headers: dict, body: bytes) -> bytes:
        kind = query.get("datasourceType", [""])[0]
        if kind not in DATASOURCE_TYPES:
            raise Fault(400, "400011", "Bad Request",
                        f"datasourceType must be one of {sorted(DATASOURCE_TYPES)}")
        overwrite = query.get("overwrite", ["false"])[0].lower() == "true"
        session = query.get("uploadSessionId", [None])[0]
        if session is None and len(body) > SINGLE_REQUEST_LIMIT:
            raise Fault(413, "413000", "Request Entity Too Large",
                        "a file over 64 MB is published with a chunked upload")
        parts = multipart(headers.get("content-type", ""), body)
        element = _payload(parts, "datasource")
        name = element.get("name")
        project_element = element.find("project")
        project_id = project_element.get("id") if project_element is not None else None
        if not name:
            raise Fault(400, "400000", "Bad Request", "<datasource> has no name")
        if session is not None:
            upload = self._uploads.pop(session, None)
            if upload is None:
                raise Fault(404, "404008", "Resource Not Found",
                            f"upload session {session} not found")
            data = upload.read_bytes()
            upload.unlink()
        elif "tableau_datasource" in parts:
            data = parts["tableau_datasource"][1]
        else:
            raise Fault(400, "400000", "Bad Request",
                        "no tableau_datasource part and no uploadSessionId")
        if kind == "hyper" and not data.startswith(HYPER_MAGIC):
            raise Fault(400, "400011", "Bad Request",
                        f"the file published as {name}.hyper is not a Hyper extract")
        with self._lock:
            project = self.projects.get(project_id or "")
            if project is None:
                raise Fault(404, "404005", "Resource Not Found",
                            f"project {project_id} not found")
            existing = next((d for d in self.datasources.values()
                             if d.name == name and d.project_id == project_id), None)
            if existing is not None and not overwrite:
                raise Fault(409, "409004", "Resource Conflict",
                            f"A data source named '{name}' already exists in the project.")
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            path = self.store / project["name"] / f"{name}.{kind}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            if existing is None:
                existing = Datasource(str(uuid.uuid4()), name, project_id, kind, path, now, now,
                                      0)
                self.datasources[existing.id] = existing
            existing.updated_at, existing.publishes = now, existing.publishes + 1
        self.calls.append({"call": "publish", "name": name, "project": project["name"],
                           "bytes": len(data), "chunked": session is not None,
                           "overwrite": overwrite})
        root, ds = _xml("datasource", id=existing.id, name=name, type=kind,
                        contentUrl=re.sub(r"[^A-Za-z0-9]", "", name),
                        createdAt=existing.created_at, updatedAt=existing.updated_at,
                        size=str(max(1, len(data) // (1024 * 1024))))
        ET.SubElement(ds, "project", id=project["id"], name=project["name"])
        ET.SubElement(ds, "owner", id=self.user_id)
        return ET.tostring(root)

    def datasource(self, project: str, name: str) -> Datasource | None:
        """The data source ``name`` in the project named ``project``, if published."""
        found = self.project_named(project)
        return next((d for d in self.datasources.values()
                     if found and d.project_id == found["id"] and d.name == name), None)


def _handler(state: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "tokenwatch-tableau/1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return None

        def _respond(self, status: int, data: bytes) -> None:
            self.send_response(status)
            if data:
                self.send_header("Content-Type", "application/xml;charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _serve(self) -> None:
            url = urlsplit(self.path)
            headers = {k.lower(): v for k, v in self.headers.items()}
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                status, data = state.handle(self.command, url.path, parse_qs(url.query),
                                            headers, body)
            except Fault as fault:
                status, data = fault.status, error_body(fault)
            except Exception as exc:  # noqa: BLE001 - a stand-in bug must answer, not hang
                status, data = 500, error_body(Fault(500, "500000", "Internal Server Error",
                                                     repr(exc)))
            self._respond(status, data)

        do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815

    return Handler


def make_server(state: StandIn, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), _handler(state))
    server.daemon_threads = True
    return server


class TableauServerThread(ServerThread):
    """The stand-in in a background thread:
    ``with TableauServerThread(store, name, secret) as tableau: tableau.url, tableau.state``."""

    def __init__(self, store: Path, token_name: str, token_secret: str, site: str = ""):
        self.state = StandIn(Path(store), token_name, token_secret, site)
        super().__init__(make_server(self.state))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--store", type=Path, required=True, help="where published files go")
    parser.add_argument("--token-name", required=True)
    parser.add_argument("--token-secret", required=True)
    parser.add_argument("--site", default="", help="the site's content URL (default: '')")
    args = parser.parse_args(argv)
    server = make_server(StandIn(args.store, args.token_name, args.token_secret, args.site),
                         args.host, args.port)
    print(f"tableau stand-in on http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
