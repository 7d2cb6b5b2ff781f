"""Bad data (unio/data/bad_records.py): one bad record of each kind stops a run with the file and the record;
with --skip-bad-records it is skipped, reported once and counted per source (metrics.jsonl, eval JSON),
and batches stay a pure function of (seed, rank, step). Also RefCOCO's own splits from evaluate.py."""
import json
import shlex

import numpy as np
import pytest
from conftest import run_script
from official_formats import add_bad_records, write_coco, write_nyu, write_refcoco

from unio.data.bad_records import BadRecord, BadRecords
from unio.data.records import frame_record
from unio.data.sources import build_source
from unio.registries import TASKS


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    """data/coco, data/nyu (each with its bad records) and data/refcoco (clean), as docs/data.md lays them out."""
    root = tmp_path_factory.mktemp("bad") / "data"
    write_coco(root / "coco")
    write_nyu(root / "nyu")
    write_refcoco(root)
    return {"root": root, "named": add_bad_records(root / "coco", root / "nyu")}


def coco(bad):
    return build_source("coco", f"coco:{bad['root'] / 'coco'}", 64)


def nyu(bad):
    return build_source("nyu", f"nyu:{bad['root'] / 'nyu' / 'nyu_depth_v2_labeled.mat'}", 64)


def read_and_frame(split, i):
    return frame_record(split[i], 64)


def test_each_kind_names_its_file_and_record(bad):
    named = bad["named"]
    train = coco(bad).split("train")
    with pytest.raises(BadRecord, match=r"instances_train2017\.json: record annotation 9999: image_id 999 is not"):
        train[0]                                     # an annotation of an unknown image: no record reads until accepted
    train.accept_problems()
    found = {}
    for i in range(len(train)):
        try:
            read_and_frame(train, i)
        except BadRecord as error:
            found[train.items[i]] = str(error)
    assert set(found) == {901, 902, 903}             # the fixture's three good images read
    for kind, image_id, problem in (("missing", 901, "image file not found"), ("truncated", 902, "image file is truncated"),
                                    ("box", 903, "has no area")):
        file, record = named[kind]
        assert found[image_id].startswith(f"{file}: record {record}: ") and problem in found[image_id], found[image_id]
    file, record = named["nan depth"]
    with pytest.raises(BadRecord, match=rf"nyu_depth_v2_labeled\.mat: record {record}: no pixel .* are NaN"):
        nyu(bad).split("train")[0]


def test_skipping_reads_the_good_records_and_counts_each_bad_one_once(bad, capsys):
    from unio.infer.evaluation import split_examples
    caption = TASKS.get("caption")
    with pytest.raises(BadRecord, match="annotation 9999"):
        split_examples(caption, coco(bad), "train", 10, 32)
    skipping = BadRecords(skip=True)
    for _ in range(2):                               # the second pass meets the same records again
        examples = split_examples(caption, coco(bad), "train", 10, 32, bad=skipping, name="coco")
    assert [ex.meta["id"] for ex in examples] == ["coco/train2017/139", "coco/train2017/285", "coco/train2017/632"]
    assert skipping.counts() == {"coco": 4}
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("skipped a bad record")]
    assert len(lines) == 4 and any("000000000902.jpg: record coco/train2017/902" in line for line in lines)
    restored = BadRecords(skip=True)
    restored.restore(skipping.state())               # what a checkpoint keeps: a resumed run counts on
    assert restored.counts() == {"coco": 4}


def mixture(sources, bad=None, seed=0):
    from unio.data.mixture import Mixture
    tasks = {"caption": TASKS.get("caption")}
    return Mixture(tasks, sources, {("caption", "coco"): 1.0}, 32, seed=seed, bad=bad)


def test_skipping_mixture_is_deterministic_and_unchanged_where_no_record_is_bad(bad, tmp_path):
    def drawn(m, index, skipped=None):
        return [(ex.meta["id"], ex.prompt, ex.target) for ex in m.megabatch(index, 16, skipped)]

    clean = tmp_path / "coco"
    write_coco(clean)
    plain = [drawn(mixture({"coco": build_source("coco", f"coco:{clean}", 32)}), k) for k in range(3)]
    skipping = [drawn(mixture({"coco": build_source("coco", f"coco:{clean}", 32)}, BadRecords(True)), k) for k in range(3)]
    assert skipping == plain                         # no bad record: the same batches as without the flag
    with pytest.raises(BadRecord):
        mixture({"coco": coco(bad)}).megabatch(0, 16)
    runs = []
    for _ in range(2):
        skipped = []
        m = mixture({"coco": coco(bad)}, BadRecords(True))
        runs.append(([drawn(m, k, skipped) for k in (2, 0, 1)], skipped))
    assert runs[0] == runs[1]                        # a function of (seed, rank, k) only, in any order
    ids = {i for batch in runs[0][0] for i, _, _ in batch}
    assert ids <= {"coco/train2017/139", "coco/train2017/285", "coco/train2017/632"} and len(ids) == 3
    assert runs[0][1] and all(source == "coco" for source, _ in runs[0][1])


def test_skipped_records_reach_the_trainer_from_the_data_worker(bad, modalities):
    """Batches built in the data worker process carry the records skipped for them to the training process."""
    from unio.data.batching import BatchStream, Collator, WorkerPrefetcher, model_inputs
    collate = Collator({"caption": TASKS.get("caption")}, modalities, 48, 40)
    stream = BatchStream(mixture({"coco": coco(bad)}, BadRecords(True)), collate, 4)
    prefetch = WorkerPrefetcher(stream, 0)
    try:
        batches = [prefetch.next() for _ in range(8)]
    finally:
        prefetch.close()
    skipped = [tuple(item) for batch in batches for item in batch.get("skipped_records", ())]
    assert skipped and {source for source, _ in skipped} == {"coco"}
    assert {message for _, message in skipped} <= {str(e) for e in bad_errors(bad)}
    assert "skipped_records" not in model_inputs(batches[0])


def bad_errors(bad) -> list:
    train = coco(bad).split("train")
    train.accept_problems()
    errors = []
    for i in range(len(train)):
        try:
            read_and_frame(train, i)
        except BadRecord as error:
            errors.append(error)
    return errors


def readme_lines(script: str) -> list:
    """docs/data.md's `python scripts/<script>` command lines of 'Train on your data' that use --skip-bad-records
    or --split, as argument lists."""
    from conftest import ROOT
    text = open(f"{ROOT}/docs/data.md").read().split("## Train on your data")[1].split("\n## ")[0]
    lines = [line.strip() for line in text.splitlines()]
    return [shlex.split(line) for line in lines
            if line.startswith(f"python scripts/{script}") and ("--skip-bad-records" in line or "--split" in line)]


def readme_run(bad, command, tmp_path, *extra):
    """A docs/data.md command with data/ and runs/ moved to the fixture and tmp_path (evaluate.py's in this
    process: it trains nothing)."""
    args = [a.replace("data/", f"{bad['root']}/").replace("runs/", f"{tmp_path}/runs/") for a in command[1:]]
    return run_script(*args, *extra, env={"UNIO_CACHE": str(tmp_path / "cache")},
                      in_process=args[0] == "scripts/evaluate.py")


@pytest.fixture(scope="module")
def trained(bad, tmp_path_factory):
    """docs/data.md's toy run with --skip-bad-records, through the real script."""
    tmp = tmp_path_factory.mktemp("skip")
    command = next(c for c in readme_lines("train_mixture.py") if "--skip-bad-records" in c)
    proc = readme_run(bad, command, tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = command[command.index("--out") + 1].replace("runs/", f"{tmp}/runs/")
    return {"proc": proc, "command": command, "out": out, "tmp": tmp}


def test_toy_run_skips_reports_and_counts_bad_records(bad, trained):
    from pathlib import Path
    out, proc = Path(trained["out"]), trained["proc"]
    rows = [json.loads(line) for line in open(out / "metrics.jsonl") if '"loss"' in line]
    assert rows and all(row["skipped_records"] == {"coco": 4, "nyu": 1} for row in rows)   # the train splits'
    evaluation = json.loads((out / "eval.json").read_text())
    assert evaluation["skipped_records"] == {"coco": 5, "nyu": 1}                          # val2017's 911 too
    for file, record in bad["named"].values():
        line = f"{file}: record {record}: "
        assert proc.stderr.count(line) == 1, line                                          # reported once
    assert "bad records: skipped 6 bad record(s): coco 5, nyu 1" in proc.stdout


def test_without_the_flag_the_run_stops_naming_file_and_record(bad, trained):
    command = [a for a in trained["command"] if a != "--skip-bad-records"]
    proc = readme_run(bad, command, trained["tmp"] / "strict")
    assert proc.returncode != 0
    assert f"bad data: {bad['named']['unknown image'][0]}: record annotation 9999: image_id 999" in proc.stderr
    assert "--skip-bad-records skips such records" in proc.stderr


def test_evaluate_a_refcoco_split_by_its_name(bad, trained):
    """evaluate.py --split testA reads RefCOCO's testA (Acc@0.5 on it); a split no source has is refused, listing them."""
    from unio.infer.evaluation import evaluation_split
    command = next(c for c in readme_lines("evaluate.py") if "--split" in c)
    assert command[command.index("--split") + 1] == "testA"
    result = trained["tmp"] / "testA.json"
    proc = readme_run(bad, command, trained["tmp"], "--json", str(result))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(result.read_text())
    assert report["split"] == "testA" and set(report["results"]) == {"refexp@refcoco"}
    assert 0.0 <= report["results"]["refexp@refcoco"]["acc@0.5"] <= 1.0
    wrong = [a if a != "testA" else "testC" for a in command]
    proc = readme_run(bad, wrong, trained["tmp"])
    assert proc.returncode != 0
    assert "no split 'testC'; its splits: testA, testB, train, val, validation, test" in proc.stderr
    ref = build_source("refcoco", f"refcoco:{bad['root'] / 'refcoco'}", 64)
    assert evaluation_split(ref, "testB") == "testB" and evaluation_split(ref, "validation") == "validation"
    with pytest.raises(KeyError, match="its splits: testA, testB"):
        evaluation_split(ref, "testC", "refcoco")


def test_evaluate_skips_and_counts_in_its_json(bad, trained):
    command = next(c for c in readme_lines("evaluate.py") if "--skip-bad-records" in c)
    result = trained["tmp"] / "skip.json"
    proc = readme_run(bad, command, trained["tmp"], "--json", str(result))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(result.read_text())
    assert report["skipped_records"] == {"coco": 1} and "caption@coco" in report["results"]
    assert proc.stderr.count("000000000911.jpg: record coco/val2017/911: image file not found") == 1
    proc = readme_run(bad, [a for a in command if a != "--skip-bad-records"], trained["tmp"])
    assert proc.returncode != 0 and "bad data: " in proc.stderr and "record coco/val2017/911" in proc.stderr


def test_unreadable_in_memory_image_is_a_bad_record():
    import io

    from PIL import Image
    data = io.BytesIO()
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(data, format="PNG")
    record = {"image": Image.open(io.BytesIO(data.getvalue()[:60])), "id": "mine/train/3", "source": "mine"}
    with pytest.raises(BadRecord, match=r"source mine: record mine/train/3: cannot decode the image"):
        frame_record(record, 32)


def test_bad_record_survives_a_data_worker():
    """A DataLoader worker re-raises an error as type(error)(message): BadRecord keeps its message then."""
    error = BadRecord("f.json", "annotation 3", "bbox has no area")
    again = type(error)(str(error))
    assert str(again) == str(error) == "f.json: record annotation 3: bbox has no area"
