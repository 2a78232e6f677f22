"""The image's HEALTHCHECK (Dockerfile). One image runs three roles, so this checks the one the
container runs, read from the command line of its PID 1 (the CMD, or the orchestrator's
command):

    tokenwatch serve [--port 8080]             GET http://127.0.0.1:<port>/healthz answers 200
    tokenwatch reports serve [--port 8090]     GET http://127.0.0.1:<port>/healthz answers 200
    dagster code-server start -p <port> ...    dagster api grpc-health-check -p <port> passes
    dagster api grpc -p <port> ...             (the same)

Any other command (a one-off ``tokenwatch db migrate``, a Dagster run worker) serves nothing:
healthy. Exit 0 healthy, 1 not. Kubernetes ignores HEALTHCHECK and probes the same endpoints
itself (deploy/helm/services.yaml, deploy/helm/values.yaml). Standard library only, and no
tokenwatch import: it runs every 30 s.
"""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

#: The health route of both HTTP services (state_service/app.py, reporting/api/app.py).
HEALTH_PATH = "/healthz"
#: The ports ``tokenwatch serve`` and ``tokenwatch reports serve`` listen on by default.
DEFAULT_PORTS = {("serve",): 8080, ("reports", "serve"): 8090}
#: ``python -m`` names of the two programs.
MODULES = {"tokenwatch.cli": "tokenwatch", "dagster": "dagster"}
TIMEOUT_S = 4  # the gRPC check gets twice that: within the HEALTHCHECK's 10 s


def _option(args: list[str], *names: str) -> str | None:
    """The value of the first of ``names`` in ``args`` (``--port 1`` or ``--port=1``)."""
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def _program(argv: list[str]) -> tuple[str, list[str]]:
    """The program and its arguments, past the interpreter: a console script runs as
    ``/opt/venv/bin/python /opt/venv/bin/tokenwatch serve ...`` (its shebang), a module as
    ``python -m tokenwatch.cli serve ...``."""
    if argv and re.fullmatch(r"python[0-9.]*", Path(argv[0]).name) and len(argv) > 1:
        if argv[1] == "-m" and len(argv) > 2:
            return MODULES.get(argv[2], argv[2]), argv[3:]
        return Path(argv[1]).name, argv[2:]
    return (Path(argv[0]).name, argv[1:]) if argv else ("", [])


def probe(argv: list[str]) -> tuple[str, str] | None:
    """What to check for a container whose PID 1 is ``argv``: ``("http", url)``,
    ``("grpc", port)``, or None (nothing to check)."""
    program, args = _program(argv)
    if program == "tokenwatch":
        for words, default in DEFAULT_PORTS.items():
            if tuple(args[:len(words)]) == words:
                port = _option(args, "--port") or str(default)
                return "http", f"http://127.0.0.1:{port}{HEALTH_PATH}"
        return None
    if program == "dagster" and args[:2] in (["code-server", "start"], ["api", "grpc"]):
        return "grpc", _option(args, "-p", "--port") or ""
    return None


def check(argv: list[str]) -> int:
    found = probe(argv)
    if found is None:
        return 0
    kind, where = found
    if kind == "http":
        try:
            with urllib.request.urlopen(where, timeout=TIMEOUT_S) as answer:
                ok = answer.status == 200
        except (urllib.error.URLError, OSError) as error:
            print(f"{where}: {error}", file=sys.stderr)
            return 1
        if not ok:
            print(f"{where}: {answer.status}", file=sys.stderr)
        return 0 if ok else 1
    if not where:
        print("the code server was started without -p PORT: nothing to probe", file=sys.stderr)
        return 1
    try:
        done = subprocess.run(["dagster", "api", "grpc-health-check", "-p", where],
                              capture_output=True, text=True, timeout=TIMEOUT_S * 2)
    except (subprocess.SubprocessError, OSError) as error:
        print(f"dagster api grpc-health-check -p {where}: {error}", file=sys.stderr)
        return 1
    if done.returncode != 0:
        print(done.stderr.strip() or done.stdout.strip(), file=sys.stderr)
    return done.returncode


def pid1_argv() -> list[str]:
    raw = Path("/proc/1/cmdline").read_bytes()
    return [part.decode() for part in raw.split(b"\0") if part]


if __name__ == "__main__":
    sys.exit(check(pid1_argv()))
