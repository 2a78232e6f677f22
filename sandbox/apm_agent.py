"""Datadog's APM test agent (``ddapm-test-agent``) as a local trace intake for the tests and the
benchmark: it speaks the agent's real trace protocol (msgpack ``/v0.4|0.5/traces``), runs its
trace checks and keeps what it received, readable over HTTP (``/test/session/traces``).

Its dependencies are heavy and not the project's, so it lives in a venv of its own,
``.tokenwatch/ddapm-test-agent-venv`` in the checkout (a tool, not state: the same for every
``TOKENWATCH_HOME``, so a test session's private home does not install it again), created on
first use from the registry with the pinned version below and reused afterwards (a lock file
keeps concurrent pytest-xdist workers from installing it twice).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

import httpx

from tokenwatch import config
from tokenwatch.ports import free_port

VERSION = "1.69.1"
#: The agent's checks run on every payload received (a failing one answers 400 to the tracer
#: and is kept for ``/test/trace_check/failures``).
CHECKS = ("trace_count_header", "meta_tracer_version_header", "trace_content_length",
          "trace_peer_service", "trace_dd_service", "meta_events_is_valid_json")


def venv_dir() -> Path:
    return config.project_root() / ".tokenwatch" / "ddapm-test-agent-venv"


def ensure_installed(progress=lambda _msg: None) -> Path:
    """The agent's executable, installing ``ddapm-test-agent==VERSION`` into its venv first
    when it is not there yet. Safe to call from several processes at once."""
    venv = venv_dir()
    exe = venv / "bin" / "ddapm-test-agent"
    marker = venv / f".installed-{VERSION}"
    if marker.exists():
        return exe
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / "ddapm-test-agent-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be installing it: wait for it
        if marker.exists():
            return exe
        progress(f"installing ddapm-test-agent {VERSION} into {venv}")
        base = getattr(sys, "_base_executable", sys.executable)
        log = venv.parent / "logs" / "ddapm-test-agent-install.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as out:
            for step in ([base, "-m", "venv", "--clear", str(venv)],
                         [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                          "--disable-pip-version-check", f"ddapm-test-agent=={VERSION}"]):
                if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT).returncode:
                    raise RuntimeError(f"installing ddapm-test-agent failed; see {log}:\n"
                                       + log.read_text()[-2000:])
        marker.touch()
    return exe


class TestAgent:
    """The test agent on free loopback ports, started and waited for; stopped on exit."""

    __test__ = False  # not a pytest class

    def __init__(self, log_path: Path, snapshot_dir: Path | None = None):
        self.log_path = log_path
        self.snapshot_dir = snapshot_dir or log_path.parent
        self.port = 0
        self.url = ""
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> Self:
        exe = ensure_installed()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a free port can be taken between choosing and binding it
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            env = {**os.environ, "ENABLED_CHECKS": ",".join(CHECKS),
                   "DD_POOL_TRACE_CHECK_FAILURES": "true", "SNAPSHOT_CI": "0",
                   "LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
            with self.log_path.open("ab") as log:
                self._proc = subprocess.Popen(
                    [str(exe), "--host", "127.0.0.1", "--port", str(self.port),
                     "--otlp-http-port", str(free_port()), "--otlp-grpc-port", str(free_port()),
                     "--snapshot-dir", str(self.snapshot_dir)],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                    start_new_session=True)
            if self._wait():
                return self
        raise RuntimeError(f"ddapm-test-agent did not start; see {self.log_path}:\n"
                           + self.log_path.read_text()[-2000:])

    def _wait(self, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                if httpx.get(f"{self.url}/info", timeout=1).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self._stop()
        return False

    def __exit__(self, *exc) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    # -- the agent's HTTP API ------------------------------------------------------------
    def start_session(self, token: str) -> None:
        httpx.get(f"{self.url}/test/session/start", params={"test_session_token": token},
                  timeout=10).raise_for_status()

    def traces(self, token: str) -> list[list[dict]]:
        """Every trace received since ``start_session(token)``, as the agent decoded it."""
        response = httpx.get(f"{self.url}/test/session/traces",
                             params={"test_session_token": token}, timeout=10)
        response.raise_for_status()
        return response.json()

    def check_failures(self) -> str | None:
        """The failed trace checks of every payload received, or None when all passed."""
        response = httpx.get(f"{self.url}/test/trace_check/failures",
                             params={"return_all": "true"}, timeout=10)
        return None if response.status_code == 200 else response.text


def main() -> None:
    """``python -m sandbox.apm_agent [--port N]``: the agent in the foreground, as a trace
    sink for ``tokenwatch serve`` (e.g. the benchmark), until interrupted."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m sandbox.apm_agent")
    parser.add_argument("--port", type=int, default=8126)
    args = parser.parse_args()
    exe = ensure_installed(progress=print)
    print(f"DD_TRACE_ENABLED=true DD_TRACE_AGENT_URL=http://127.0.0.1:{args.port}", flush=True)
    otlp = [str(free_port()), str(free_port())]
    try:
        subprocess.run([str(exe), "--host", "127.0.0.1", "--port", str(args.port),
                        "--otlp-http-port", otlp[0], "--otlp-grpc-port", otlp[1]],
                       env={**os.environ, "LOG_LEVEL": "WARNING"})
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
