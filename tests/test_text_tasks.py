"""Text-only tasks: prompts without an image (`entailment` on the world's pairs and GLUE-style sentence pairs,
`text_class` on GLUE-style sentences), read through the hf source from parquet files in GLUE's columns."""
import json

import numpy as np
import pytest
from conftest import run_script, world_examples

import unio
from unio.data.records import make_example
from unio.data.sources import build_source
from unio.data.world.relations import LABELS
from unio.registries import TASKS
from unio.task import NothingToAsk

MNLI = {"train": [("A man plays a guitar.", "A person makes music.", 0), ("A dog runs.", "The dog is asleep.", 2),
                  ("A child reads.", "The child is at school.", 1), ("Two cats sit.", "Animals are sitting.", 0)],
        "validation_matched": [("A woman sings.", "Someone sings.", 0), ("It is raining.", "The sky is clear.", 2)],
        "test_matched": [("A boy swims.", "A boy is in water.", -1)]}
SST2 = {"train": [("a gorgeous, witty film", 1), ("dull and lifeless", 0), ("a triumph", 1)],
        "validation": [("utterly charming", 1), ("a waste of time", 0)], "test": [("hidden label", -1)]}


def write_glue(root, config: str, rows: dict, columns: tuple, names: list):
    """A GLUE config as the hub's parquet files lay it out ({split}-00000-of-00001.parquet, ClassLabel labels)."""
    import datasets
    features = datasets.Features({**{c: datasets.Value("string") for c in columns},
                                  "label": datasets.ClassLabel(names=names), "idx": datasets.Value("int32")})
    for split, items in rows.items():
        table = {c: [r[k] for r in items] for k, c in enumerate(columns)}
        table.update(label=[r[-1] for r in items], idx=list(range(len(items))))
        datasets.Dataset.from_dict(table, features=features).to_parquet(str(root / config / f"{split}-00000-of-00001.parquet"))
    return root / config


@pytest.fixture(scope="module")
def glue(tmp_path_factory):
    root = tmp_path_factory.mktemp("glue")
    return {"mnli": write_glue(root, "mnli", MNLI, ("premise", "hypothesis"), list(LABELS)),
            "sst2": write_glue(root, "sst2", SST2, ("sentence",), ["negative", "positive"]),
            "rte": write_glue(root, "rte", {"train": [("A man plays.", "A man is playing.", 0)]}, ("sentence1", "sentence2"),
                              ["entailment", "not_entailment"])}


def test_world_entailment_examples_read_no_image(modalities):
    task = TASKS.get("entailment")
    examples = world_examples(task, "train", 30, 32)
    assert all(ex.image is None and ex.target in LABELS for ex in examples)
    assert {ex.target for ex in examples} == set(LABELS)
    ex = examples[0]
    premise, hypothesis = ex.prompt.removeprefix("Premise: ").split(" Hypothesis: ") if ex.prompt.startswith("Premise") \
        else ex.prompt[len('Does "'):-2].split('" imply "')
    assert [premise, hypothesis, ex.target] in ex.record["entailment"]
    assert task.answer_options(ex) == list(LABELS)
    for ex, ids in zip(examples, task.targets(examples, modalities)):
        assert task.decode(ids, modalities, ex) == ex.target
    assert task.evaluate([ex.target for ex in examples], examples)["accuracy"] == 1.0
    wrong = task.evaluate(["neutral"] * len(examples), examples)
    assert wrong["accuracy_neutral"] == 1.0 and wrong["accuracy_entailment"] == 0.0
    assert wrong["accuracy"] == pytest.approx(np.mean([ex.target == "neutral" for ex in examples]))


def test_unio_run_answers_a_prompt_without_an_image(runner):
    result = unio.run("Premise: a large red cube and a small blue sphere. Hypothesis: There are two objects.", model=runner)
    assert result.task == "entailment" and result.text in LABELS and result.image is None
    both = unio.run(["Premise: a red cube. Hypothesis: There is a cube.", "Sentence: a triumph Label:"], model=runner)
    assert [r.task for r in both] == ["entailment", "text_class"] and both[1].text in ("negative", "positive")
    helped = unio.entailment("a large red cube.", "There is a cube.", model=runner)   # the helper: slots alone
    assert helped.prompt == "Premise: a large red cube. Hypothesis: There is a cube." and helped.text in LABELS
    with pytest.raises(ValueError, match="no image given, and the prompt 'Tell me more.' is no text-only task's"):
        unio.run("Tell me more.", model=runner)
    with pytest.raises(ValueError, match="task 'caption' reads an image; pass one"):
        unio.run("What does the image describe?", model=runner)


def test_glue_parquet_through_the_hf_source(glue):
    # datasets names a folder's splits by its files: validation_matched -> validation, test_matched -> test
    mnli = build_source("mnli", f"hf:{glue['mnli']},test=validation", 32)
    assert {"premise", "hypothesis", "label"} <= set(mnli.keys) and "test" in mnli.splits()
    record = mnli.split("train")[1]
    assert (record["premise"], record["hypothesis"], record["label_names"]) == ("A dog runs.", "The dog is asleep.", list(LABELS))
    task, rng = TASKS.get("entailment"), np.random.default_rng(0)
    examples = [make_example(task, mnli.split("test")[i], 32, rng) for i in range(2)]
    assert [ex.target for ex in examples] == ["entailment", "contradiction"] and examples[0].frame is None
    assert examples[0].prompt in ("Premise: A woman sings. Hypothesis: Someone sings.", 'Does "A woman sings." imply "Someone sings."?')
    assert task.evaluate(["entailment", "neutral"], examples)["accuracy"] == 0.5
    short = type(task)(max_premise_words=2)          # a long premise is cut, the hypothesis kept whole
    assert make_example(short, mnli.split("train")[0], 32, np.random.default_rng(1)).prompt in (
        "Premise: A man Hypothesis: A person makes music.", 'Does "A man" imply "A person makes music."?')
    with pytest.raises(NothingToAsk, match="no label"):                    # GLUE's hidden test labels
        make_example(task, build_source("mnli", f"hf:{glue['mnli']}", 32).split("test")[0], 32, rng)
    # a single-sentence config, and a pair config whose columns are mapped onto premise / hypothesis
    sst2 = build_source("sst2", f"hf:{glue['sst2']},test=validation", 32)
    ex = make_example(TASKS.get("text_class"), sst2.split("test")[1], 32, rng)
    assert ex.target == "negative" and TASKS.get("text_class").answer_options(ex) == ["negative", "positive"]
    rte = build_source("rte", f"hf:{glue['rte']},premise=sentence1,hypothesis=sentence2", 32)
    ex = make_example(task, rte.split("train")[0], 32, rng)
    assert ex.target == "entailment" and task.answer_options(ex) == ["entailment", "not_entailment"]
    renamed = build_source("sst2", {"kind": "hf", "path": str(glue["sst2"]), "label_names": ["bad", "good"]}, 32)
    assert make_example(TASKS.get("text_class"), renamed.split("train")[0], 32, rng).target == "good"
    with pytest.raises(KeyError, match="test='nope': no such split"):
        build_source("sst2", f"hf:{glue['sst2']},test=nope", 32)


def test_a_toy_run_trains_and_evaluates_text_tasks_beside_an_image_task(glue, tmp_path):
    out = tmp_path / "run"
    proc = run_script("scripts/train_mixture.py", "--tasks", "entailment,entailment@mnli,text_class@sst2,relation",
                      "--source", f"mnli=hf:{glue['mnli']},test=validation",
                      "--source", f"sst2=hf:{glue['sst2']},test=validation",
                      "--preset", "toy", "--batch-size", "8", "--vq-steps", "5", "--steps", "6", "--no-compile",
                      "--no-progress", "--eval-n", "4", "--out", str(out), env={"UNIO_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluation = json.loads((out / "eval.json").read_text())["model"]
    assert set(evaluation) == {"entailment", "entailment@mnli", "text_class@sst2", "relation"}
    assert all(0.0 <= evaluation[pair]["accuracy"] <= 1.0 for pair in evaluation)
    result = unio.run("Premise: A dog runs. Hypothesis: The dog is asleep.", model=str(out))
    assert result.text in LABELS


def test_the_hypothesis_only_baseline_reads_the_hypothesis_and_never_the_premise():
    from unio.kit.text_labels import HypothesisOnly
    from unio.task import Example

    def pair(premise, hypothesis, label):
        return Example("entailment", None, f"Premise: {premise} Hypothesis: {hypothesis}", label, {"hypothesis": hypothesis})
    train = [pair("a red cube.", "There is no cube.", "contradiction"),
             pair("a cube.", "There is not a sphere.", "contradiction"), pair("a red cube.", "There is a cube.", "entailment"),
             pair("a cube.", "There is a red cube.", "entailment"), pair("a cube.", "It is large.", "neutral")]
    baseline = HypothesisOnly(train)
    assert baseline(pair("anything", "There is no sphere.", "?")) == "contradiction"      # a cue word decides
    assert baseline(pair("a blue sphere.", "There is a cube.", "?")) == "entailment"       # the premise is not read
    assert baseline(pair("", "Never seen words.", "?")) in {"contradiction", "entailment"}  # the priors alone
    examples = world_examples(TASKS.get("entailment"), "test", 20, 32)
    assert all(ex.meta["hypothesis"] and ex.meta["hypothesis"] in ex.prompt for ex in examples)
    assert set(TASKS.get("entailment").baselines()) == {"majority", "hypothesis_only"}
