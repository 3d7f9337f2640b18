"""Every command the READMEs write runs as written, from the repository root, with no
virtualenv activated: checked without running the expensive thing.

What counts as a command: each line of a ```sh block, each backticked span that starts
with `make `, `.venv/bin/`, `bash ` or `switch ` (after `NAME=value` assignments), and the
command lines of loadtests/locustfile.py's docstring (the SRE guide sends readers there).
Spans that start with a tool of the virtualenv written bare (`locust ...`, `pip ...`) or
with a script given arguments (`loadtests/scaling.py --workers 1`) are commands too, and
fail: they run only in an activated virtualenv, or not at all.

How each is checked:

- `make T... VAR=...`: `make -n` accepts it (a target exists; make rejects options after
  the target, e.g. `make bench --quick`), and every `.venv/bin/...` line it would run is
  checked in turn, so `ARGS` reach a script whose parser takes them;
- `.venv/bin/python script.py args`: the script exists and its argparse parser (its
  `_parser()`) accepts the arguments; `-m module`: the module is installed;
- `.venv/bin/switch sub ... args` (and `switch sub ...`, how the docs name the CLI's
  commands): `.venv/bin/switch sub ... --help` exits 0 and names every option;
- `.venv/bin/locust -f FILE args`: Locust's own parser, with FILE's custom options,
  accepts the arguments (in a subprocess: Locust monkey-patches with gevent on import),
  and every user class named is one of FILE's;
- `.venv/bin/X`: the executable exists; `bash FILE`, `cp SOURCE...`, and input files
  (`--config`, `-f`, ...): they exist.

A synopsis (`[--option VALUE]`, `a|b`) is checked for its options and alternatives, not
for its placeholder values.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import io
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ".venv/bin/"
DOCS = ("README.md", "loadtests/README.md", "adapters/template/README.md")
DOCSTRINGS = ("loadtests/locustfile.py",)
SHELL_FENCES = {"sh", "bash", "shell", "console"}

# Commands with a part the reader fills in, skipped on purpose (each says why).
PLACEHOLDERS = {
    # the device run's extra configuration is TOML the reader writes
    "SCALING_WORKERS=4,8,12 SCALING_MODES=batch SCALING_EXTRA_CONFIG=<[batcher] max_items = 512> "
    "bash loadtests/device_scaling.sh",
    # the adapter template's test under the name the reader copies it to (its section 1)
    ".venv/bin/python -m pytest -q tests/adapters/test_my_rail.py",
}

# Tools that live in .venv/bin: written bare, they need an activated virtualenv.
VENV_TOOLS = {"locust", "pip", "pip3", "python", "python3", "pytest", "ruff", "mypy", "cython"}
# Options whose value is a file the command reads.
INPUT_OPTIONS = {"--config", "--extra-config", "-f", "--locustfile"}

_ASSIGNMENTS = r"(?:[A-Za-z_][A-Za-z0-9_]*=(?:<[^>]*>|\S+)\s+)*"
_COMMAND = re.compile(rf"^{_ASSIGNMENTS}(?:make\s|\.venv/bin/|bash\s|switch\s)")
_BARE_TOOL = re.compile(rf"^{_ASSIGNMENTS}(?:{'|'.join(sorted(VENV_TOOLS))})(?:\s|$)")
_SCRIPT_WITH_ARGS = re.compile(r"^[\w./-]+\.(?:py|sh)\s+\S")
_INLINE_CODE = re.compile(r"(?<!`)`([^`\n]+(?:\n[^`\n]+)*?)`(?!`)")  # may wrap, never over a blank line
_PLACEHOLDER = re.compile(r"<[^>]*>|\.\.\.")
_COMMENT = re.compile(r"(?:^|\s+)#.*$")  # a shell comment: no documented argument holds a "#"


@dataclass(frozen=True)
class Documented:
    where: str  # file:line
    text: str


def _is_command(text: str) -> bool:
    return bool(_COMMAND.match(text) or _BARE_TOOL.match(text) or _SCRIPT_WITH_ARGS.match(text))


def _from_markdown(name: str) -> list[Documented]:
    lines = (ROOT / name).read_text().splitlines()
    found: list[Documented] = []
    prose: list[str] = []  # the text outside fences, fenced lines blanked (line numbers kept)
    fence: str | None = None
    pending: list[str] = []
    start = 0
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = stripped[3:].strip() if fence is None else None
            prose.append("")
            continue
        if fence is None:
            prose.append(line)
            continue
        prose.append("")
        if fence not in SHELL_FENCES or (not pending and (not stripped or stripped.startswith("#"))):
            continue
        if not pending:
            start = number
        pending.append(_COMMENT.sub("", stripped).removesuffix("\\").strip())
        if not stripped.endswith("\\"):
            found.append(Documented(f"{name}:{start}", " ".join(pending)))
            pending = []
    text = "\n".join(prose)
    for match in _INLINE_CODE.finditer(text):
        span = " ".join(match.group(1).split())
        if _is_command(span):
            found.append(Documented(f"{name}:{text.count(chr(10), 0, match.start()) + 1}", span))
    return found


def _from_docstring(name: str) -> list[Documented]:
    doc = ast.get_docstring(ast.parse((ROOT / name).read_text())) or ""
    found: list[Documented] = []
    pending: list[str] = []
    for line in doc.splitlines():
        stripped = line.strip()
        if not pending and not (_COMMAND.match(stripped) or _BARE_TOOL.match(stripped)):
            continue
        pending.append(_COMMENT.sub("", stripped).removesuffix("\\").strip())
        if not stripped.endswith("\\"):
            found.append(Documented(f"{name} (docstring)", " ".join(pending)))
            pending = []
    return found


def documented_commands() -> list[Documented]:
    found = [command for name in DOCS for command in _from_markdown(name)]
    return found + [command for name in DOCSTRINGS for command in _from_docstring(name)]


# --- the checks ------------------------------------------------------------------------------------


def problems(text: str) -> list[str]:
    """What keeps a documented command from running as written; empty when nothing does."""
    found: list[str] = []
    for part in text.split("&&"):
        found += _problems_of_part(part.strip())
    return found


def _problems_of_part(text: str) -> list[str]:
    if _PLACEHOLDER.search(text):
        return [f"{text!r} has a placeholder: write a runnable command, or add it to PLACEHOLDERS with why"]
    try:
        words = shlex.split(text, comments=True)
    except ValueError as error:
        return [f"{text!r}: {error}"]
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        words = words[1:]  # NAME=value before the command: the environment
    if not words:
        return []
    synopsis = any("[" in word or "]" in word for word in words)
    words = [word.strip("[]") for word in words]
    words = [word for word in words if word]
    found: list[str] = []
    # a|b: one command for each alternative (a synopsis)
    choices = [word.split("|") if "|" in word and not word.startswith("-") else [word] for word in words]
    for chosen in itertools.product(*choices):
        found += _problems_of_words(list(chosen), synopsis=synopsis or any(len(c) > 1 for c in choices))
    return found


def _problems_of_words(words: list[str], *, synopsis: bool) -> list[str]:
    program, args = words[0], words[1:]
    shown = shlex.join(words)
    if program == "make":
        return _make_problems(args, shown)
    if program == "bash":
        return [] if args and (ROOT / args[0]).is_file() else [f"{shown!r}: no such script"]
    if program == "cp":
        sources = [arg for arg in args if not arg.startswith("-")][:-1]
        return [f"{shown!r}: no {source}" for source in sources if not (ROOT / source).exists()]
    if program in (f"{VENV_BIN}switch", "switch"):
        return ([] if synopsis else _input_problems(args, shown)) + _switch_problems(args, shown)
    if not program.startswith(VENV_BIN):
        if program in VENV_TOOLS:
            return [f"{shown!r} needs an activated virtualenv: write {VENV_BIN}{program}"]
        if program.endswith(".py"):
            return [f"{shown!r} is not executable: write {VENV_BIN}python {program}"]
        if program.endswith(".sh"):
            return [f"{shown!r} is not executable: write bash {program}"]
        return [] if _on_path(program) else [f"{shown!r}: {program} is not installed"]
    if not os.access(ROOT / program, os.X_OK):
        return [f"{shown!r}: no executable {program}"]
    found = [] if synopsis else _input_problems(args, shown)
    tool = program.removeprefix(VENV_BIN)
    if tool in ("python", "python3"):
        return found + _python_problems(args, shown)
    if tool == "locust":
        return found + _locust_problems(tuple(args), shown)
    return found


def _on_path(program: str) -> bool:
    return any(os.access(Path(folder, program), os.X_OK) for folder in os.environ.get("PATH", "").split(os.pathsep))


def _input_problems(args: list[str], shown: str) -> list[str]:
    found = []
    for option, value in itertools.pairwise(args):
        if option in INPUT_OPTIONS and not (ROOT / value).exists():
            found.append(f"{shown!r}: {option} {value}: no such file")
    return found


def _environment() -> dict[str, str]:
    # a make of our own (make test) must not pass its flags or job server to the make we ask
    skip = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"}
    return {name: value for name, value in os.environ.items() if name not in skip}


def _make_problems(args: list[str], shown: str) -> list[str]:
    options = [arg for arg in args if arg.startswith("-")]
    if options:
        return [f"{shown!r}: make takes {' '.join(options)} as its own option: pass it as ARGS=..."]
    done = subprocess.run(
        ["make", "-n", *args], cwd=ROOT, env=_environment(), capture_output=True, text=True, timeout=30, check=False
    )
    if done.returncode != 0:
        return [f"{shown!r}: make -n failed: {done.stderr.strip()[-500:]}"]
    found = []
    for line in done.stdout.replace("\\\n", " ").splitlines():
        if _COMMAND.match(line.strip()) and VENV_BIN in line:
            found += [f"{shown!r} runs {line.strip()!r}: {problem}" for problem in problems(line.strip())]
    return found


def _switch_problems(args: list[str], shown: str) -> list[str]:
    path = list(itertools.takewhile(lambda arg: not arg.startswith("-"), args))
    help_text = _switch_help(tuple(path))
    if help_text is None:
        return [f"{shown!r}: {VENV_BIN}switch {' '.join(path)} --help failed"]
    return [f"{shown!r}: {option} is not an option here" for option in _options(args) if not _names(help_text, option)]


@cache
def _switch_help(path: tuple[str, ...]) -> str | None:
    command = [str(ROOT / VENV_BIN / "switch"), *path, "--help"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    return done.stdout if done.returncode == 0 else None


def _options(args: list[str]) -> list[str]:
    return [arg.split("=", 1)[0] for arg in args if arg.startswith("-") and not re.match(r"^-\d", arg)]


def _names(help_text: str, option: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", help_text) is not None


def _python_problems(args: list[str], shown: str) -> list[str]:
    if not args:
        return []
    if args[0] == "-m":
        module = args[1] if len(args) > 1 else ""
        if importlib.util.find_spec(module) is None:
            return [f"{shown!r}: no module {module}"]
        paths = [arg for arg in args[2:] if not arg.startswith("-") and ("/" in arg or arg.endswith(".py"))]
        return [f"{shown!r}: no {path}" for path in paths if not (ROOT / path).exists()]
    script, script_args = ROOT / args[0], args[1:]
    if not script.is_file():
        return [f"{shown!r}: no script {args[0]}"]
    if not script_args:
        return []
    error = _parse_error(script, script_args)
    return [] if error is None else [f"{shown!r}: {error}"]


def _parse_error(script: Path, args: list[str]) -> str | None:
    """What the script's argparse parser says of these arguments (None: it takes them)."""
    source = script.read_text()
    if "def _parser(" in source and (script.parent / "__init__.py").exists():
        dotted = ".".join(script.relative_to(ROOT).with_suffix("").parts)
        parser = importlib.import_module(dotted)._parser()
        said = io.StringIO()
        try:
            with contextlib.redirect_stderr(said):
                parser.parse_args(args)
        except SystemExit:
            return said.getvalue().strip().splitlines()[-1]
        return None
    if "argparse" not in source:
        return f"cannot check the arguments of {script.name} (no argparse parser)"
    # argparse stops at --help without judging the rest: every option must be in its help
    done = subprocess.run(
        [sys.executable, str(script), "--help"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return f"{script.name} --help failed"
    unknown = [option for option in _options(args) if not _names(done.stdout, option)]
    return f"{script.name} has no {', '.join(unknown)}" if unknown else None


# Run by the virtualenv's python, in its own process: Locust's parser with the
# locustfile's options (--batch-size), and the user classes named.
_LOCUST_CHECK = """
import importlib.util, json, sys
from locust import User
from locust.argument_parser import parse_options

answers = []
for args in json.load(sys.stdin):
    path = args[args.index("-f") + 1] if "-f" in args else "locustfile.py"
    spec = importlib.util.spec_from_file_location("documented_locustfile", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        options = parse_options(args)
    except SystemExit:
        answers.append("Locust refuses these arguments")
        continue
    classes = {n for n, v in vars(module).items() if isinstance(v, type) and issubclass(v, User)}
    missing = [n for n in options.user_classes if n not in classes]
    answers.append(f"no user class {', '.join(missing)} in {path}" if missing else "")
print(json.dumps(answers))
"""


def _locust_problems(args: tuple[str, ...], shown: str) -> list[str]:
    answer = _locust_answers(_documented_locust_args() | {args})[args]
    return [f"{shown!r}: {answer}"] if answer else []


@cache
def _documented_locust_args() -> frozenset[tuple[str, ...]]:
    found = set()
    for command in documented_commands():
        if command.text.startswith(f"{VENV_BIN}locust ") and not _PLACEHOLDER.search(command.text):
            found.add(tuple(shlex.split(command.text, comments=True)[1:]))
    return frozenset(found)


@cache
def _locust_answers(all_args: frozenset[tuple[str, ...]]) -> dict[tuple[str, ...], str]:
    """One Locust process answers for every documented command (each start costs ~0.6 s)."""
    ordered = sorted(all_args)
    done = subprocess.run(
        [sys.executable, "-c", _LOCUST_CHECK],
        input=json.dumps(ordered),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(zip(ordered, json.loads(done.stdout.splitlines()[-1]), strict=True))


# --- the tests -------------------------------------------------------------------------------------

COMMANDS = documented_commands()


@pytest.mark.parametrize("command", COMMANDS, ids=[f"{c.where} {c.text[:60]}" for c in COMMANDS])
def test_a_documented_command_runs_as_written(command: Documented) -> None:
    if command.text in PLACEHOLDERS:
        pytest.skip("a placeholder the reader fills in")
    assert problems(command.text) == [], command.where


def test_every_document_has_commands_found_and_every_placeholder_is_still_there() -> None:
    where = {command.where.split(":")[0].removesuffix(" (docstring)") for command in COMMANDS}
    assert where == set(DOCS) | set(DOCSTRINGS)
    assert {command.text for command in COMMANDS} >= PLACEHOLDERS  # the allow-list does not rot


@pytest.mark.parametrize(
    "text",
    [
        "make bench --quick",  # make takes --quick as its own option
        "make stages --batch 16",
        "make no-such-target",
        "locust -f loadtests/locustfile.py",  # not on PATH without the virtualenv
        "pip install -e .",
        "loadtests/scaling.py --workers 1,2,4",  # not executable
        ".venv/bin/python loadtests/capacity.py --no-such-option",
        ".venv/bin/python loadtests/no_such_script.py",
        ".venv/bin/locust -f loadtests/locustfile.py --no-such-option",
        ".venv/bin/locust -f loadtests/locustfile.py NoSuchUser",
        ".venv/bin/switch serve --no-such-option",
        ".venv/bin/switch no-such-command",
        ".venv/bin/no-such-tool",
        "bash loadtests/no_such_script.sh",
        ".venv/bin/switch serve --config no/such/file.toml",
        "make bench ARGS=--no-such-option",  # ARGS reach the script's parser
    ],
)
def test_what_does_not_run_as_written_is_found(text: str) -> None:
    assert problems(text)


def test_the_walker_finds_commands_where_the_docs_write_them() -> None:
    texts = {command.text for command in COMMANDS}
    assert "make demo" in texts  # a ```sh block
    assert "make bench ARGS=--quick" in texts  # inline
    assert ".venv/bin/python loadtests/bench_fees.py" in texts  # inline, wrapped over two lines
    assert any(text.startswith(".venv/bin/locust -f loadtests/locustfile.py --master") for text in texts)
