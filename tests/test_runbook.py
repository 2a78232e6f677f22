"""RUNBOOK.md stays true to the code it tells operators to run.

* every monitor of ``reporting/datadog/monitors`` has a section under "Respond to each monitor",
  headed with its exact ``name``, and that part holds no section for a monitor that does not
  exist;
* every ``tokenwatch``, ``dagster``, ``dagster-daemon`` and ``dagster-cloud`` command line in
  its code (fenced blocks and inline code) names a real subcommand (its ``--help`` exits 0),
  uses only options that command has, and (``tokenwatch``) parses as written;
* the Dagster jobs, schedules, sensors and asset checks it names exist in the definitions;
* every repository path it names exists;
* every ``TOKENWATCH_*`` / ``DD_*`` variable it names is a setting of ``tokenwatch.config`` (the
  Snowflake users of ``deploy/snowflake/bootstrap.sql`` are names, not variables); a
  ``DAGSTER_*`` one is Dagster's own (``DAGSTER_HOME``, the instance's in
  ``deploy/dagster/dagster.yaml``, the ``dagster-cloud`` CLI's); ``AWS_*`` ones are boto3's.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import click
import typer._click as typer_click  # typer carries its own click: its commands are of that one

ROOT = Path(__file__).resolve().parent.parent
RUNBOOK = ROOT / "RUNBOOK.md"
MONITORS = ROOT / "reporting" / "datadog" / "monitors"
MONITOR_SECTION = "Respond to each monitor"
#: what every monitor's section tells (bold labels; "First checks" may share its label)
MONITOR_PARTS = ("**Means**", "**First checks", "**Escalate**")

FENCE = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", re.M | re.S)
INLINE = re.compile(r"`([^`\n]+)`")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)


# -- reading the runbook -------------------------------------------------------------------

def runbook() -> str:
    return RUNBOOK.read_text()


def without_fences(text: str) -> str:
    return FENCE.sub("", text)


def headings(text: str) -> list[tuple[int, str, int]]:
    """(level, title, offset) of every heading outside the code blocks."""
    prose = without_fences(text)
    return [(len(m.group(1)), m.group(2), m.start()) for m in HEADING.finditer(prose)]


def section(text: str, title: str) -> str:
    """The body of the heading ``title`` (outside code), up to the next heading of its level or
    above."""
    prose = without_fences(text)
    found = headings(text)
    for i, (level, name, at) in enumerate(found):
        if name == title:
            end = next((a for lv, _, a in found[i + 1:] if lv <= level), len(prose))
            return prose[at:end]
    raise AssertionError(f"RUNBOOK.md has no section {title!r}")


def code_lines(text: str) -> Iterator[str]:
    """Each command line of the code: the lines of the fenced blocks (backslash continuations
    joined) and every inline code span outside them."""
    for block in FENCE.findall(text):
        yield from block.replace("\\\n", " ").splitlines()
    yield from INLINE.findall(without_fences(text))


# -- command lines -------------------------------------------------------------------------

@dataclass(frozen=True)
class Invocation:
    program: str  # tokenwatch | dagster | dagster-daemon | dagster-cloud
    args: tuple[str, ...]
    line: str


PROGRAMS = ("tokenwatch", "dagster", "dagster-daemon", "dagster-cloud")
OPERATORS = {"|", "||", "&&", ";", "&", "(", ")"}
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def _program(token: str) -> str | None:
    name = token.rsplit("/", 1)[-1] if token.startswith((".venv/", "/")) else token
    return name if name in PROGRAMS else None


def invocations(line: str) -> list[Invocation]:
    """The programs of ours a shell line runs: at a command's position (after any VAR=value),
    or after ``--`` (``kubectl exec ... -- tokenwatch ...``); never an argument that happens to
    be the word (``kubectl -n tokenwatch``)."""
    if not any(p in line for p in PROGRAMS):
        return []
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)  # a quote left open raises: a broken command line fails the test
    found, segment = [], []
    for token in [*tokens, ";"]:
        if token not in OPERATORS:
            segment.append(token)
            continue
        words = segment
        segment = []
        while words and ASSIGNMENT.match(words[0]):
            words = words[1:]
        starts = [0] + [i + 1 for i, w in enumerate(words) if w == "--"]
        for start in starts:
            if start < len(words) and (program := _program(words[start])):
                found.append(Invocation(program, tuple(words[start + 1:]), line.strip()))
                break
    return found


def _subcommands(program: str) -> set[str]:
    return set(getattr(root_command(program), "commands", {}))


def undetected(line: str) -> list[str]:
    """Words of ours followed by one of their subcommands where :func:`invocations` sees no
    command (a redirection or an unquoted placeholder in front: ``X=<secret> tokenwatch db``):
    such a line would go unchecked, so it fails instead."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        return [line]
    seen = {(inv.program, inv.args) for inv in invocations(line)}
    missed = []
    for i, word in enumerate(words[:-1]):
        program = _program(word)
        if program and words[i + 1] in _subcommands(program) and not any(
                p == program and args[:1] == (words[i + 1],) for p, args in seen):
            missed.append(line.strip())
    return missed


def runbook_invocations(text: str | None = None) -> list[Invocation]:
    """Every command line of ours in the code; a program's bare name (`dagster-daemon`) is a
    mention, not a command line."""
    return [inv for line in code_lines(text or runbook()) for inv in invocations(line)
            if inv.args]


@cache
def root_command(program: str) -> click.Command:
    if program == "tokenwatch":
        from tokenwatch.cli import command

        return command()
    if program == "dagster":
        from dagster._cli import create_dagster_cli

        return create_dagster_cli()
    if program == "dagster-daemon":
        from dagster._daemon.cli import create_dagster_daemon_cli

        return create_dagster_daemon_cli()
    from typer.main import get_command

    with warnings.catch_warnings():  # its own deprecations (pydantic's, typer's): not ours
        warnings.simplefilter("ignore", DeprecationWarning)
        from dagster_cloud_cli.entrypoint import app

        return get_command(app)


def click_of(cmd):
    """The click module ``cmd`` belongs to: click's, or typer's own copy."""
    return click if isinstance(cmd, click.Command) else typer_click


def is_group(cmd) -> bool:
    """A command with subcommands (typer's copy of click has no Group class of its own)."""
    return isinstance(getattr(cmd, "commands", None), dict)


CLICK_ERRORS = (click.ClickException, click.exceptions.Exit, click.exceptions.Abort,
                typer_click.ClickException, typer_click.core.Exit, typer_click.core.Abort)


def resolve(program: str, args: tuple[str, ...]) -> tuple[list[str], click.Command, list[str]]:
    """(subcommand path, the command it names, the rest of the arguments)."""
    cmd, path, rest = root_command(program), [], list(args)
    while is_group(cmd) and rest and not rest[0].startswith("-"):
        sub = cmd.get_command(click_of(cmd).Context(cmd, info_name=program), rest[0])
        if sub is None:
            break
        cmd, path, rest = sub, [*path, rest[0]], rest[1:]
    return path, cmd, rest


def options_used(rest: list[str]) -> list[str]:
    used = []
    for token in rest:
        if token == "--":
            break
        if token.startswith("-") and token != "-" and not re.fullmatch(r"-\d+(\.\d+)?", token):
            used.append(token.split("=", 1)[0])
    return used


def known_options(cmd: click.Command) -> set[str]:
    ctx = click_of(cmd).Context(cmd, info_name=cmd.name)
    names = {"--help", *cmd.get_help_option_names(ctx)}
    for param in cmd.params:
        if param.param_type_name == "option":
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


def run_help(program: str, path: list[str]) -> tuple[object, str]:
    """``program <path> --help`` run by its click root in this process: (exit code, output)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            code = root_command(program).main(args=[*path, "--help"], prog_name=program,
                                              standalone_mode=False)
        except SystemExit as done:
            code = done.code
        except CLICK_ERRORS as error:
            code = getattr(error, "exit_code", 1)
            out.write(str(error))
    return code or 0, out.getvalue()


def problems_of(inv: Invocation) -> list[str]:
    path, cmd, rest = resolve(inv.program, inv.args)
    where = f"{inv.line!r}"
    if is_group(cmd):
        return [f"{where}: `{' '.join([inv.program, *path])}` is a group, "
                f"{rest[0] if rest else 'nothing'!r} is not one of its commands"]
    problems = []
    code, output = run_help(inv.program, path)
    if code != 0 or "Usage" not in output:
        problems.append(f"{where}: `{' '.join([inv.program, *path, '--help'])}` exited "
                        f"{code}: {output[-300:]}")
    unknown = [o for o in options_used(rest) if o not in known_options(cmd)]
    if unknown:
        problems.append(f"{where}: `{' '.join([inv.program, *path])}` has no option "
                        f"{', '.join(unknown)}")
    if inv.program == "tokenwatch" and not problems:
        try:  # parsed as written (values, arguments, required options), never run
            cmd.make_context(" ".join([inv.program, *path]), list(rest))
        except CLICK_ERRORS as error:
            message = error.format_message() if hasattr(error, "format_message") else repr(error)
            problems.append(f"{where}: does not parse: {message}")
    return problems


# -- the tests -----------------------------------------------------------------------------

def monitor_names() -> set[str]:
    return {json.loads(p.read_text())["name"] for p in sorted(MONITORS.glob("*.json"))}


def monitor_problems(text: str) -> list[str]:
    names = monitor_names()
    part = section(text, MONITOR_SECTION)
    titles = [title for level, title, _ in headings(part) if level == 3]
    problems = [f"monitor {n!r} has no section headed with its exact name"
                for n in sorted(names - set(titles))]
    problems += [f"section {t!r} is no monitor of reporting/datadog/monitors"
                 for t in titles if t not in names]
    problems += [f"monitor {t!r} has {titles.count(t)} sections"
                 for t in sorted(set(titles)) if titles.count(t) > 1]
    elsewhere = [t for _, t, _ in headings(text) if t.startswith("[tokenwatch]")
                 and t not in names]
    problems += [f"heading {t!r} looks like a monitor but none is named so" for t in elsewhere]
    for name in sorted(names & set(titles)):
        body = section(part, name)
        problems += [f"monitor {name!r}: its section says no {label}"
                     for label in MONITOR_PARTS if label not in body]
    return problems


def test_every_monitor_has_its_section_and_only_those():
    assert len(monitor_names()) >= 12
    assert monitor_problems(runbook()) == []


def test_every_command_line_parses():
    found = runbook_invocations()
    by_program = {p: sum(inv.program == p for inv in found) for p in PROGRAMS}
    assert by_program["tokenwatch"] >= 15 and by_program["dagster"] >= 5, by_program
    problems = [p for inv in found for p in problems_of(inv)]
    problems += [f"{line!r}: not read as a command line" for text_line in code_lines(runbook())
                 for line in undetected(text_line)]
    assert problems == []


def test_the_command_check_sees_a_bad_command():
    fake = ("```sh\nkubectl -n tokenwatch exec -it x -- tokenwatch doctor --envv prod\n"
            "TOKENWATCH_PG_DSN=x tokenwatch db migrat\n```\n"
            "`tokenwatch audit report --from 2026-11-05` and `dagster job launch --partition 1`\n"
            "`helm install dagster --namespace tokenwatch`\n")
    found = runbook_invocations(fake)
    assert [(i.program, i.args[:2]) for i in found] == [
        ("tokenwatch", ("doctor", "--envv")), ("tokenwatch", ("db", "migrat")),
        ("tokenwatch", ("audit", "report")), ("dagster", ("job", "launch"))]
    assert all(problems_of(inv) for inv in found)
    assert undetected("TOKENWATCH_PG_DSN=x TOKENWATCH_SERVICE_PG_PASSWORD=<secret> "
                      "tokenwatch db migrate")
    assert not undetected("kubectl -n tokenwatch exec -it x -- tokenwatch db migrate")


#: written `asset/key:check` in the runbook's inline code
CHECK_NAME = re.compile(r"^[a-z][a-z0-9_]*(?:/[a-z0-9_]+)+:[a-z][a-z0-9_]*$")
NAMED_BY = {("job", "launch"): "job", ("job", "backfill"): "job", ("schedule", "start"):
            "schedule", ("sensor", "start"): "sensor"}


def dagster_names_used(text: str) -> dict[str, set[str]]:
    used: dict[str, set[str]] = {"job": set(), "schedule": set(), "sensor": set(), "check": set()}
    for inv in runbook_invocations(text):
        if inv.program not in ("dagster", "dagster-cloud"):
            continue
        args = list(inv.args)
        for flag in ("-j", "--job"):
            if flag in args[:-1]:
                used["job"].add(args[args.index(flag) + 1])
        kind = NAMED_BY.get(tuple(args[:2]))
        if kind in ("schedule", "sensor") and len(args) > 2 and not args[2].startswith("-"):
            used[kind].add(args[2])
    used["check"] = {s for s in INLINE.findall(without_fences(text)) if CHECK_NAME.match(s)}
    return used


def test_the_dagster_names_exist():
    from orchestration.definitions import defs

    jobs = {j.name for j in defs.resolve_all_job_defs()}
    schedules = {s.name for s in defs.schedules}
    sensors = {s.name for s in defs.sensors}
    checks = {f"{key.asset_key.to_user_string()}:{key.name}"
              for key in defs.resolve_asset_graph().asset_check_keys}
    used = dagster_names_used(runbook())
    assert len(used["job"]) >= 4 and used["check"], used
    assert sorted(used["job"] - jobs) == []
    assert sorted(used["schedule"] - schedules) == []
    assert sorted(used["sensor"] - sensors) == []
    assert sorted(used["check"] - checks) == []


TOPS = ("tokenwatch", "state_service", "ingestion", "dbt_project", "quality", "reporting",
        "orchestration", "sandbox", "tests", "bench", "deploy")
ROOT_FILES = ("Dockerfile", "dagster_cloud.yaml", "workspace.yaml", "README.md",
              "ARCHITECTURE.md", "RUNBOOK.md", "Makefile", "pyproject.toml", "requirements.lock")
_NOT_AFTER = r"(?<![\w/.$:@-])"
PATH = re.compile(_NOT_AFTER + r"((?:" + "|".join(TOPS) + r")/[\w./*-]*)")
ROOT_FILE = re.compile(_NOT_AFTER + r"(" + "|".join(map(re.escape, ROOT_FILES)) + r")(?![\w.-])")


def named_paths(text: str) -> set[str]:
    found = {m.group(1).rstrip(".,") for m in PATH.finditer(text)}
    found |= {m.group(1) for m in ROOT_FILE.finditer(text)}
    return {p.rstrip("/") for p in found}


def missing_paths(text: str) -> list[str]:
    return sorted(p for p in named_paths(text)
                  if not (list(ROOT.glob(p)) if "*" in p else (ROOT / p).exists()))


def test_every_path_named_exists():
    paths = named_paths(runbook())
    assert {"deploy/aws/ingestion-policy.json", "tokenwatch/wallets.py", "Dockerfile"} <= paths
    assert missing_paths(runbook()) == []


def test_the_path_check_sees_paths():
    text = ("see `deploy/aws/nope.json`, tokenwatch/wallets.py and Dockerfile; not "
            "deployment/dagster-daemon, /dagster-workspace/workspace.yaml or s3://b/tests/x")
    assert named_paths(text) == {"deploy/aws/nope.json", "tokenwatch/wallets.py", "Dockerfile"}
    assert missing_paths(text) == ["deploy/aws/nope.json"]


VARIABLE = re.compile(r"(?<![A-Za-z0-9_])((?:TOKENWATCH|DD)_[A-Z0-9_]*)(\*?)")
DAGSTER_VARIABLE = re.compile(r"(?<![A-Za-z0-9_])(DAGSTER_[A-Z0-9_]+)")


def dagster_variables() -> set[str]:
    """Dagster's own variables: the instance's (``env:`` of deploy/dagster/dagster.yaml),
    ``DAGSTER_HOME``, and those the ``dagster-cloud`` CLI reads."""
    import dagster_cloud_cli.config_utils as cloud

    names = set(DAGSTER_VARIABLE.findall((ROOT / "deploy/dagster/dagster.yaml").read_text()))
    names |= set(re.findall(r"DAGSTER_CLOUD_[A-Z_]+", Path(cloud.__file__).read_text()))
    return names | {"DAGSTER_HOME"}


def snowflake_users() -> set[str]:
    sql = (ROOT / "deploy" / "snowflake" / "bootstrap.sql").read_text()
    return set(re.findall(r"create user if not exists (\w+)", sql, re.I))


def unknown_variables(text: str) -> list[str]:
    from tokenwatch import config

    settings = set(config.env_vars().values())
    names = snowflake_users()
    unknown = set()
    for m in VARIABLE.finditer(text):
        name, wildcard = m.groups()
        if wildcard:  # TOKENWATCH_SNOWFLAKE_*: a prefix of settings
            if not any(s.startswith(name) for s in settings):
                unknown.add(name + "*")
        elif name not in settings and name not in names:
            unknown.add(name)
    unknown |= set(DAGSTER_VARIABLE.findall(text)) - dagster_variables()
    return sorted(unknown)


def test_every_variable_named_is_a_setting():
    text = runbook()
    assert len({m.group(1) for m in VARIABLE.finditer(text)}) >= 30
    assert DAGSTER_VARIABLE.findall(text)
    assert unknown_variables(text) == []


def test_the_variable_check_sees_a_bad_name():
    assert unknown_variables(
        "TOKENWATCH_CHAIN_KEYS, TOKENWATCH_SNOWFLAKE_*, DAGSTER_HOME, DAGSTER_PG_PASSWORD, "
        "DAGSTER_CLOUD_API_TOKEN, AWS_REGION, TOKENWATCH_PIPELINE, TOKENWATCH_CHAIN_KEY, "
        "DD_APIKEY, TOKENWATCH_NOPE_*, DAGSTER_PG_PASS") == [
        "DAGSTER_PG_PASS", "DD_APIKEY", "TOKENWATCH_CHAIN_KEY", "TOKENWATCH_NOPE_*"]


def test_the_monitor_check_sees_a_renamed_section():
    text = runbook().replace("### [tokenwatch] Pipeline: run failed",
                             "### [tokenwatch] Pipeline: run faild")
    problems = monitor_problems(text)
    assert any("has no section" in p for p in problems)
    assert any("is no monitor" in p for p in problems)
