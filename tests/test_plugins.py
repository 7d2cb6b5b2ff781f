"""Registries, plugin loading by path, and the `tokenizers` name hazard."""
import subprocess
import sys
import textwrap

import pytest
from conftest import ROOT

from unio import plugins
from unio.registries import TASKS, TOKENIZERS
from unio.registry import Registry, RegistryError


def test_builtins_are_registered():
    assert {"text", "coordinates", "vq"} <= set(TOKENIZERS.names())
    assert {"vqa", "caption", "refexp", "depth", "count"} <= set(TASKS.names())


def test_duplicate_name_refused_unless_replace():
    reg = Registry("thing")
    reg.register("a", 1)
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("a", 2)
    reg.register("a", 2, replace=True)
    assert reg.get("a") == 2


def test_unknown_name_lists_available():
    with pytest.raises(RegistryError, match="available: .*caption.*vqa"):
        TASKS.get("nope")


def test_temporary_registration_is_removed():
    with TASKS.temporary("scratch_task", object()) as obj:
        assert TASKS.get("scratch_task") is obj
    assert "scratch_task" not in TASKS


def test_invalid_name_rejected():
    with pytest.raises(ValueError, match="identifier"):
        Registry("thing").register("not a name", 1)


def test_plugin_from_temporary_file(tmp_path):
    path = tmp_path / "my_plugin.py"
    path.write_text(textwrap.dedent('''
        from unio.registries import register_task

        @register_task("tmp_plugin_task")
        class Mine:
            name = "tmp_plugin_task"
            prompts = ["Anything?"]
    '''))
    try:
        module = plugins.load(path)
        assert plugins.load(path) is module  # idempotent
        assert TASKS.get("tmp_plugin_task").name == "tmp_plugin_task"
    finally:
        TASKS.unregister("tmp_plugin_task")


def test_missing_plugin_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a .py file"):
        plugins.load(tmp_path / "absent.py")


def test_name_hazard_tokenizers_resolves_to_huggingface():
    """From the repo root (as under python -m pytest), `import tokenizers` must be Hugging Face's."""
    code = ("import sys; sys.path.insert(0, ''); import tokenizers, transformers, unio; "
            "print(tokenizers.__file__); assert hasattr(tokenizers, 'Tokenizer')")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "site-packages" in out.stdout


def test_plugin_folders_are_not_packages():
    import os
    for folder in ("tokenizers", "tasks"):
        assert not os.path.exists(os.path.join(ROOT, folder, "__init__.py"))


def test_cli_lists_plugins():
    out = subprocess.run([sys.executable, "-m", "unio.cli", "plugins"], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr
    assert "coordinates" in out.stdout and "vqa" in out.stdout


def test_task_options_rebuild_the_task_and_name_what_is_valid():
    from unio.registries import TASKS
    from unio.task_set import TaskSet, configured_task, merge_task_options, parse_task_options
    assert parse_task_options(["detection.order=x", "find_all.absent=0.5"]) == {
        "detection": {"order": "x"}, "find_all": {"absent": 0.5}}
    trained = {"itm": {"ground": "detection", "easy": 0.2}, "detection": {"order": "x"}}
    assert merge_task_options(trained, {"itm": {"easy": 0.5}, "find_all": {"absent": 0.3}}) == {
        "itm": {"ground": "detection", "easy": 0.5}, "detection": {"order": "x"}, "find_all": {"absent": 0.3}}
    assert merge_task_options(trained, None) == trained
    with pytest.raises(ValueError, match="TASK.OPTION=VALUE"):
        parse_task_options(["order=x"])
    original = TASKS.get("detection")
    tasks = TaskSet({"detection": {"order": "area"}})
    assert tasks.get("detection").order == "area" and tasks.get("detection") is tasks.get("detection")
    assert TASKS.get("detection") is original and original.order == "x"      # the registry is untouched
    assert tasks.get("vqa") is TASKS.get("vqa")                                  # tasks without options are shared
    with pytest.raises(ValueError, match="no option 'ordr'; its options: order, max_objects"):
        configured_task("detection", {"ordr": "x"})
    with pytest.raises(ValueError, match="order must be one of random, x, area"):
        TaskSet({"detection": {"order": "y"}})
