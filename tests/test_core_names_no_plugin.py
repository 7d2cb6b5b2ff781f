"""The core names no built-in task or tokenizer: everything it needs from them it asks the plugins."""
import ast
from pathlib import Path

from conftest import ROOT

BUILTIN = {p.stem for folder in ("tasks", "tokenizers") for p in (Path(ROOT) / folder).glob("*.py")}
# the record schema names its keys ("depth" among them): the schema, the world's source and the readers
# of official formats (which also name those formats' own keys, COCO's "caption") may
SCHEMA_MODULES = {"records.py", "world", "readers"}


def docstrings(tree) -> set:
    nodes = [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))]
    return {id(n.body[0].value) for n in nodes if n.body and isinstance(n.body[0], ast.Expr)
            and isinstance(n.body[0].value, ast.Constant)}


def plugin_names_in(path: Path) -> list:
    tree = ast.parse(path.read_text())
    skip = docstrings(tree)
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
            and names_plugins(node.value)]


def names_plugins(text: str) -> bool:
    """A plugin's name, or a list of them ('vqa,caption:2'); prose that mentions one in an example is fine."""
    parts = [p.strip().partition(":")[0].partition("@")[0] for p in text.split(",")]
    return all(p in BUILTIN for p in parts)


def test_builtin_plugin_names_are_known():
    assert {"vqa", "caption", "refexp", "depth", "text", "coordinates", "vq"} <= BUILTIN


def test_no_core_module_names_a_builtin_task_or_tokenizer():
    found = {}
    for path in sorted((Path(ROOT) / "unio").rglob("*.py")):
        if SCHEMA_MODULES & {path.name, path.parent.name}:
            continue
        names = plugin_names_in(path)
        if names:
            found[str(path.relative_to(ROOT))] = names
    assert not found, f"core modules naming built-in plugins (ask the plugin instead): {found}"


def test_the_check_finds_a_plugin_name(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('"""Docstrings may say vqa."""\nif task == "refexp":\n    mods["coordinates"]\nDEFAULT = "vqa,caption"\n')
    assert sorted(v for _, v in plugin_names_in(bad)) == ["coordinates", "refexp", "vqa,caption"]
