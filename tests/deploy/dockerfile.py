"""The Dockerfile, read without Docker: its instructions per stage (continuation lines joined,
comments dropped) and what the deployment files take from it."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
SECRET_WORDS = {"KEY", "KEYS", "PASSWORD", "PASSPHRASE", "SECRET", "TOKEN", "DSN",
                "CREDENTIALS"}


def _settings() -> tuple[set[str], set[str]]:
    from tokenwatch import config

    fields = config.Settings.model_fields
    secret = {name for name, f in fields.items() if "SecretStr" in str(f.annotation)}
    return {config.env_var(name) for name in fields}, {config.env_var(name) for name in secret}


#: Every setting's variable, and those whose setting is a secret (SecretStr in
#: tokenwatch/config.py).
SETTINGS, SECRET_SETTINGS = _settings()


def secret_name(name: str) -> bool:
    """Whether a variable holds a secret: a setting when tokenwatch/config.py types it SecretStr
    (TOKENWATCH_SNOWFLAKE_PRIVATE_KEY_PATH is a path), any other name when a word of it
    (``_``-separated) is KEY, PASSWORD, ..."""
    if name in SETTINGS:
        return name in SECRET_SETTINGS
    return bool(SECRET_WORDS & set(name.upper().split("_")))


@dataclass
class Instruction:
    keyword: str  # upper-cased: FROM, RUN, COPY, ENV, ...
    value: str

    def words(self) -> list[str]:
        """An exec-form value (``["a", "b"]``) as its list; a shell-form one split as sh would."""
        text = self.value.strip()
        return json.loads(text) if text.startswith("[") else shlex.split(text)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def instructions(text: str | None = None) -> list[Instruction]:
    text = DOCKERFILE.read_text() if text is None else text
    found, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment line inside a continued instruction
        pending += (" " if pending else "") + stripped.removesuffix("\\").strip()
        if not stripped.endswith("\\"):
            keyword, _, value = pending.partition(" ")
            found.append(Instruction(keyword.upper(), value.strip()))
            pending = ""
    return found


def stages(text: str | None = None) -> list[Stage]:
    out: list[Stage] = []
    for ins in instructions(text):
        if ins.keyword == "FROM":
            words = ins.value.split()
            out.append(Stage(words[0], words[2] if len(words) > 2 else None))
        elif out:
            out[-1].instructions.append(ins)
    return out


def env_pairs(ins: Instruction) -> dict[str, str]:
    """``ENV A=1 B=2`` (or the legacy ``ENV A 1``) as a dict; ``ARG A=1`` / ``ARG A`` too."""
    if "=" not in ins.value.split()[0]:
        name, _, value = ins.value.partition(" ")
        return {name: value.strip()}
    return dict(word.split("=", 1) if "=" in word else (word, "")
                for word in shlex.split(ins.value))


def runtime() -> Stage:
    return stages()[-1]


def runtime_uid() -> int:
    """The numeric uid the image runs as (its last USER)."""
    (user,) = runtime().all("USER")[-1:]
    uid = user.value.split(":")[0]
    assert re.fullmatch(r"\d+", uid), f"USER {user.value}: give the uid (runAsNonRoot checks it)"
    return int(uid)


def run_lines(stage: Stage) -> list[str]:
    return [i.value for i in stage.all("RUN")]


def click_params(group, args: list[str]) -> dict:
    """``args`` parsed by the click command line ``group`` as if typed, without running the
    command: its options' values (a usage error raises, naming the option). Duck-typed: typer
    brings a click of its own."""
    command, rest = group, list(args)
    while hasattr(command, "commands"):
        name, *rest = rest
        command = command.get_command(command.context_class(command), name)
        assert command is not None, f"no command {name!r} in {args}"
    return command.make_context(group.name or "cli", rest).params


def tokenwatch_params(args: list[str]) -> dict:
    from tokenwatch.cli import command

    return click_params(command(), args)


def dagster_params(args: list[str]) -> dict:
    from dagster._cli import cli

    return click_params(cli, args)
