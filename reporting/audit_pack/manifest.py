"""``manifest.json``: the sha256 of every file of a pack, and what made it; and the check of a
pack against it (``tokenwatch audit check-pack``)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from importlib import metadata
from pathlib import Path

from tokenwatch import config
from tokenwatch.kpis import dbt_project_dir

NAME = "manifest.json"
FORMAT = "tokenwatch-audit-pack-v1"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def software_version() -> dict:
    """tokenwatch's installed version, and the commit it was built from:
    ``TOKENWATCH_GIT_COMMIT`` (an image has no checkout), else the checkout's, when there is
    one."""
    try:
        version = metadata.version("tokenwatch")
    except metadata.PackageNotFoundError:
        version = "unknown (not installed)"
    commit = config.settings().git_commit
    if commit:
        return {"tokenwatch": version, "git_commit": commit}
    try:
        found = subprocess.run(["git", "rev-parse", "HEAD"], cwd=config.project_root(),
                               capture_output=True, text=True, timeout=10)
        if found.returncode == 0:
            commit = found.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return {"tokenwatch": version, "git_commit": commit}


def dbt_manifest_sha256() -> str | None:
    path = dbt_project_dir() / "target" / "manifest.json"
    return sha256(path) if path.is_file() else None


def write(directory: Path, facts: dict) -> Path:
    """Hash every file in ``directory`` (but the manifest) and write the manifest."""
    files = {p.name: sha256(p) for p in sorted(directory.iterdir())
             if p.is_file() and p.name != NAME}
    report = {name: files[name] for name in ("report.html", "report.pdf") if name in files}
    body = {"format": FORMAT, **facts, "report": report, "files": files}
    path = directory / NAME
    path.write_text(json.dumps(body, indent=2, sort_keys=True, default=str) + "\n")
    return path


def check(directory: Path) -> list[str]:
    """Every way ``directory`` differs from its manifest, one sentence each; [] when it
    verifies."""
    directory = Path(directory)
    path = directory / NAME
    if not directory.is_dir():
        return [f"{directory} is not a directory"]
    if not path.is_file():
        return [f"{NAME} is missing: {directory} is not an audit pack"]
    try:
        body = json.loads(path.read_text())
        files: dict[str, str] = body["files"]
    except (ValueError, KeyError, TypeError) as exc:
        return [f"{NAME} cannot be read ({exc.__class__.__name__}: {exc})"]
    problems = []
    present = {p.name for p in directory.iterdir() if p.name != NAME}
    for name in sorted(files):
        if name not in present:
            problems.append(f"{name}: missing (the manifest lists it)")
        elif not (directory / name).is_file():
            problems.append(f"{name}: not a file")
        elif sha256(directory / name) != files[name]:
            problems.append(f"{name}: sha256 differs from the manifest's (the file changed)")
    for name in sorted(present - set(files)):
        problems.append(f"{name}: extra (not in the manifest)")
    for name, digest in sorted(body.get("report", {}).items()):
        if files.get(name) != digest:
            problems.append(f"{NAME}: the report's hash for {name} differs from its files entry")
    return problems
