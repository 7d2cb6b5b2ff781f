"""The tree says where a change belongs, and imports run one way: the shared modules at unio/'s top
(registries, vocabulary, grammar, the task protocol) import no layer; `model` and `kit` import only those;
`data` imports `kit` and `model`; `infer` imports `data`; `train` imports `infer`; the command lines and
the package's public names (`unio/__init__.py`, `unio/cli.py`) sit on top. Imports needed only for type
hints (under `if TYPE_CHECKING:`) do not count."""
import ast
from pathlib import Path

from conftest import ROOT

RANK = {"shared": 0, "model": 1, "kit": 1, "data": 2, "infer": 3, "train": 4, "top": 5}


def layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "unio":
        return None
    if len(parts) == 1 or parts[1] == "cli":
        return "top"
    return parts[1] if parts[1] in RANK else "shared"


def imports(tree) -> list:
    """(line, module) of every absolute import outside `if TYPE_CHECKING:` blocks."""
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and ast.unparse(node.test).endswith("TYPE_CHECKING") for n in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, node.module)] + [(node.lineno, f"unio.{a.name}") for a in node.names
                                                      if node.module == "unio"]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return [(line, m) for line, m in found if m != "unio"]


def test_imports_run_one_way():
    upward = []
    for path in sorted((Path(ROOT) / "unio").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        mine = layer(module)
        for line, imported in imports(ast.parse(path.read_text())):
            theirs = layer(imported)
            sideways = {mine, theirs} == {"model", "kit"}
            if theirs and theirs != mine and (RANK[theirs] > RANK[mine] or sideways):
                upward.append(f"{path.relative_to(ROOT)}:{line} ({mine}) imports {imported} ({theirs})")
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


def test_the_check_sees_an_upward_import():
    tree = ast.parse("from unio.train.trainer import Trainer\nif TYPE_CHECKING:\n    from unio.infer import x\n")
    assert imports(tree) == [(1, "unio.train.trainer")] and layer("unio.train.trainer") == "train"
    assert layer("unio.vocab") == "shared" and layer("unio") == "top" and layer("numpy") is None
