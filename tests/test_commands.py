"""Commands that cannot drift: every command README.md, CHANGELOG.md and docs/*.md show parses with the
project's own parser, and every repository path it names exists.

A command is a shell line in a fenced block or an inline code span that runs `python scripts/X.py`,
`python -m unio...`, `unio ...`, `torchrun`/`deepspeed ... scripts/X.py`, or `scripts/X.py ARGS`; env
assignments, `/usr/bin/time -v`, redirections, pipes, `&&` chains and `# comments` are shell, not
arguments. The docs' one placeholder convention: `...` stands for options left out. `$NAME` expands an
assignment line (`NAME="..."`) earlier in the same block. In prose, `unio eval` alone names a subcommand
(`unio eval --help` must answer); `scripts/X.py` alone names a file (it must exist).
"""
import contextlib
import functools
import importlib
import importlib.util
import io
import re
import shlex
import string
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

ROOT = Path(ROOT)
DOCS = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^[ \t]*```(\w*)\n(.*?)^[ \t]*```", re.DOTALL | re.MULTILINE)   # indented in a list, too
SHELL_FENCES = {"bash", "sh", "shell", "console"}   # unlabelled fences hold output and trees
INLINE = re.compile(r"`([^`]+)`")
SCRIPT_MENTION = re.compile(r"scripts/[\w/.-]+?\.(?:py|sh)\b")
ASSIGNMENT = re.compile(r"[A-Za-z_]\w*=")
SEPARATORS = {"&&", "||", ";", "|"}
REDIRECT = re.compile(r"\d*(?:>>?|<)(?:&\d+)?")     # `>`, `2>&1`, `>>`; a target may follow attached


def shell_lines(doc: Path):
    """(line number, text, block variables, inline?) of each logical line of each shell block, each inline span."""
    text = doc.read_text()
    prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)     # fences blanked, lines kept
    for m in FENCE.finditer(text):
        if m.group(1) in SHELL_FENCES:
            yield from block_lines(m.group(2), text.count("\n", 0, m.start(2)) + 1)
    for m in INLINE.finditer(prose):
        if "\n\n" not in m.group(1):     # a span never crosses a paragraph
            yield prose.count("\n", 0, m.start()) + 1, m.group(1).replace("\n", " "), {}, True


def block_lines(block: str, first_line: int):
    """A block's logical lines (`\\` continues one), each with the variables assigned above it."""
    variables, start, pending = {}, first_line, ""
    for number, line in enumerate(block.splitlines(), first_line):
        start = number if not pending else start
        pending += line
        if pending.endswith("\\"):
            pending = pending[:-1]
            continue
        if ASSIGNMENT.match(pending):
            words = shlex.split(pending, comments=True)
            variables.update(w.split("=", 1) for w in words if ASSIGNMENT.match(w))
        yield start, pending, dict(variables), False
        pending = ""


def segments(words: list) -> list:
    """The commands of a shell line: split at `&&`, `|` ..., redirections and `...` dropped."""
    out, current, skip_next = [], [], False
    for word in words:
        if skip_next or word == "...":
            skip_next = False
        elif word in SEPARATORS:
            out, current = out + [current], []
        elif REDIRECT.match(word):
            skip_next = REDIRECT.fullmatch(word) is not None and "&" not in word
        else:
            current.append(word)
    return [c for c in out + [current] if c]


def without_prefixes(words: list) -> list:
    """Drop env assignments and `/usr/bin/time -v` in front of the program."""
    while words and (ASSIGNMENT.match(words[0]) or words[0] in ("time", "/usr/bin/time")):
        timing = words[0] in ("time", "/usr/bin/time")
        words = words[1:]
        while timing and words and words[0].startswith("-"):
            words = words[1:]
    return words


def program(words: list, inline: bool):
    """(what runs, its arguments) when the words run something the project parses, else None."""
    words = without_prefixes(words)
    if not words:
        return None
    head, *rest = words
    if head in ("python", "python3") and rest[:1] == ["-m"] and len(rest) > 1:
        return (rest[1], rest[2:]) if rest[1].split(".")[0] == "unio" else None
    if head in ("python", "python3") and rest and rest[0].startswith("scripts/"):
        return rest[0], rest[1:]
    if head in ("torchrun", "deepspeed"):
        scripts = [i for i, w in enumerate(rest) if w.endswith(".py")]
        return (rest[scripts[0]], rest[scripts[0] + 1:]) if scripts else (head, rest)
    if head == "unio":      # in prose, `unio eval` names a subcommand: its --help must answer
        return "unio", (rest + ["--help"] if inline and len(rest) < 2 else rest)
    if head.startswith("scripts/") and head.endswith(".py") and rest:
        return head, rest
    return None


def documented_commands():
    """pytest params, one per command, id file:line."""
    params = []
    for doc in DOCS:
        for line, text, variables, inline in shell_lines(doc):
            where = f"{doc.relative_to(ROOT)}:{line}"
            try:
                words = shlex.split(string.Template(text).safe_substitute(variables), comments=True)
            except ValueError:      # in backticks, prose with an apostrophe; in a shell block, a fault
                params += [] if inline else [pytest.param(where, text, None, [], id=where)]
                continue
            found = (program(command, inline) for command in segments(words))
            params += [pytest.param(where, text, *f, id=where) for f in found if f]
    return params


@functools.cache
def script_parser_factory(path: str):
    """A script's parser(), its module loaded by path; scripts/ last on sys.path for its sibling imports."""
    spec = importlib.util.spec_from_file_location(f"doc_script_{Path(path).stem}", ROOT / path)
    module = importlib.util.module_from_spec(spec)
    sys.path.append(str(ROOT / "scripts"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    return module.parser


def parser_and_args(what: str, args: list):
    """The parser that reads `what`'s arguments, and those arguments (`unio train` reads train's)."""
    from unio import cli
    if what == "unio" and args[:1] and args[0] in cli.DELEGATED:
        what, args = cli.DELEGATED[args[0]], args[1:]
    if what == "unio":
        return cli.parser(), args
    if what.endswith(".py"):
        return script_parser_factory(what)(), args
    return importlib.import_module(what).parser(), args


@functools.cache
def repository_dirs() -> frozenset:
    """The top-level folders git tracks: a word under one of them names a repository path (runs/ never does)."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return frozenset(f.split("/")[0] for f in files.splitlines() if "/" in f)


def missing_paths(words: list) -> list:
    """The words (or the values of NAME=VALUE words) under a repository folder that name nothing there."""
    values = [w.rsplit("=", 1)[-1] for w in words]
    return [v for v in values if v.split("/")[0] in repository_dirs() and not (ROOT / v).exists()]


COMMANDS = documented_commands()


def test_the_docs_have_commands():
    """The extraction finds the commands at all (a broken pattern would pass every case below vacuously)."""
    assert len(COMMANDS) > 100


def test_shell_around_a_command_is_not_its_arguments():
    line = "A=1 /usr/bin/time -v python scripts/x.py --n 2 ... 2>&1 > log | tee out && unio run 'a b' --seed 0  # c"
    commands = [program(c, inline=False) for c in segments(shlex.split(line, comments=True))]
    assert commands == [("scripts/x.py", ["--n", "2"]), None, ("unio", ["run", "a b", "--seed", "0"])]
    assert program(["unio", "eval"], inline=True) == ("unio", ["eval", "--help"])


@pytest.mark.parametrize("where,text,what,args", COMMANDS)
def test_documented_command_parses(where, text, what, args):
    assert what is not None, f"{where}: `{text}` is not shell that shlex can split"
    assert what not in ("torchrun", "deepspeed"), f"{where}: `{text}` names no script to launch"
    assert not what.endswith(".py") or (ROOT / what).exists(), f"{where}: `{text}` runs {what}, which does not exist"
    missing = missing_paths(args)
    assert not missing, f"{where}: `{text}` names {missing}, not in the repository"
    parser, args = parser_and_args(what, args)
    error = io.StringIO()
    with contextlib.redirect_stderr(error), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(args)
        except SystemExit as exit:
            assert not exit.code, f"{where}: `{text}` does not parse:\n{error.getvalue()}"


def test_every_named_script_exists():
    missing = [f"{doc.relative_to(ROOT)}: {m.group(0)}" for doc in DOCS
               for m in SCRIPT_MENTION.finditer(doc.read_text()) if not (ROOT / m.group(0)).exists()]
    assert not missing


@pytest.mark.parametrize("path", sorted(p for p in (ROOT / "scripts").glob("*.py") if "__main__" in p.read_text()),
                         ids=lambda p: p.name)
def test_every_script_exposes_its_parser(path):
    """Importing a script runs nothing, and its parser() is what the test above reads its commands with."""
    assert script_parser_factory(str(path.relative_to(ROOT)))().format_usage()
