"""Sources and records: the world as a source, datasets and folders as sources, the frame that maps
records of any size onto the model's input (and back), and pairing checks."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from unio.data.batching import Collator
from unio.data.mixture import parse_mixture
from unio.data.records import LazyList, frame_record, make_example
from unio.data.sources import as_source, build_source, check_pairs, parse_spec
from unio.registries import SOURCES, TASKS
from unio.task import to_original
from unio.vocab import IGNORE


def odd_record():
    """A 97 x 61 (width x height) photo-like record with one object: box, mask, keypoints and depth."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (61, 97, 3), dtype=np.uint8)
    mask = np.zeros((61, 97), bool)
    mask[20:45, 30:80] = True
    depth = np.full((61, 97), 4.0, np.float32)
    depth[mask] = 2.0
    valid = np.ones((61, 97), bool)
    valid[:, :5] = False
    return {"image": image, "id": "odd/0", "source": "odd", "max_depth": 10.0, "depth": depth, "depth_valid": valid,
            "objects": [{"box": [30, 20, 80, 45], "mask": mask, "keypoints": [[55, 32, 2]], "category": "thing"}],
            "refexps": [["the thing", 0]], "captions": ["a thing."]}


def test_world_records_follow_the_schema():
    record = build_source("world", None, 64).split("test")[3]
    assert record["id"] == "world/test/3" and record["source"] == "world" and record["image"].shape == (64, 64, 3)
    obj = record["objects"][0]
    assert len(obj["box"]) == 4 and obj["mask"].shape == (64, 64) and obj["category"].endswith(obj["attributes"]["shape"])
    question, answers, kind = record["questions"][0]
    assert isinstance(answers, list) and kind in {"color", "shape", "size", "count", "exist", "spatial"}
    assert record["depth"].shape == record["depth_valid"].shape == (64, 64) and record["max_depth"] == 20.0


def test_frame_maps_annotations_and_back():
    record = odd_record()
    framed, frame = frame_record(record, 32)
    assert framed["image"].shape == (32, 32, 3) and not framed["image"][21:].any()   # 61/97*32 = 20 rows, then padding
    box = frame.box_to_original(framed["objects"][0]["box"])
    assert np.allclose(box, [30, 20, 80, 45])
    back = frame.mask_to_original(framed["objects"][0]["mask"])
    inter, union = (back & record["objects"][0]["mask"]).sum(), (back | record["objects"][0]["mask"]).sum()
    assert inter / union > 0.85
    assert not framed["depth_valid"][21:].any() and framed["depth_valid"][:20, 3:].all()
    assert record["image"].shape == (61, 97, 3)          # the original is left as it was


def test_odd_sized_record_trains_and_its_target_decodes_back(modalities):
    """A 97 x 61 record goes into a training batch; its refexp target decodes back to the original box
    within a location bin of the model frame, and its depth target leaves the padding out of the loss."""
    refexp, depth = TASKS.get("refexp"), TASKS.get("depth")
    rng = np.random.default_rng(0)
    examples = [make_example(refexp, odd_record(), 32, rng), make_example(depth, odd_record(), 32, rng)]
    batch = Collator({"refexp": refexp, "depth": depth}, modalities, 48, 40)(examples)
    assert batch["pixel_values"].shape == (2, 3, 32, 32)
    ids = [int(i) for i in batch["labels"][0] if i >= 0][:4]
    box = to_original(refexp, refexp.decode(ids, modalities, examples[0]), examples[0].frame)
    bin_px = 32 / modalities["coordinates"].num_bins / examples[0].frame.scale
    assert np.allclose(box, [30, 20, 80, 45], atol=bin_px / 2 + 1e-6)
    depth_labels = batch["labels"][1]
    assert (depth_labels[:16] == IGNORE).sum() > 0, "padding rows of the code grid are left out of the loss"
    assert (batch["decoder_input_ids"][1, 1:17] != 0).all(), "the decoder still reads every code"


def test_a_dataset_is_a_source_as_it_is(tmp_path):
    import datasets
    images = [Image.fromarray(np.full((h, w, 3), 100, np.uint8)) for h, w in ((40, 70), (64, 64), (90, 30))]
    data = datasets.Dataset.from_dict({"image": images, "captions": [["a grey picture."]] * 3})
    source = as_source(data, "grey")
    assert source.splits() == ["train"] and "captions" in source.keys
    record = source.split("train")[2]
    assert record["captions"] == ["a grey picture."] and record["id"] == "grey/train/2" and record["source"] == "grey"
    example = make_example(TASKS.get("caption"), record, 32, np.random.default_rng(0))
    assert example.image.shape == (32, 32, 3) and example.target == "a grey picture."
    data.save_to_disk(str(tmp_path / "saved"))
    mapped = build_source("mine", f"hf:{tmp_path / 'saved'},captions=captions", 32)
    assert len(mapped.split("train")) == 3


def test_parquet_shards_stream_row_by_row_without_loading_the_dataset(tmp_path, monkeypatch):
    """hf:PATH,stream=true on Hugging Face's shard layout: rows read back from their row groups in any
    order, a few row groups held, nothing converted (no `datasets` cache written), and a toy mixture trains
    from them."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from unio.data.mixture import Mixture
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))

    def png(value):
        buffer = io.BytesIO()
        Image.fromarray(np.full((20, 30, 3), value, np.uint8)).save(buffer, format="PNG")
        return {"bytes": buffer.getvalue(), "path": None}
    (tmp_path / "data").mkdir()
    for shard in range(3):
        rows = range(shard * 10, shard * 10 + 10)
        table = pa.table({"img": [png(r) for r in rows], "text": [[f"picture {r}."] for r in rows]})
        pq.write_table(table, tmp_path / "data" / f"train-{shard:05d}-of-00003.parquet", row_group_size=4)
    source = build_source("shards", f"hf:{tmp_path},stream=true,image=img,captions=text", 32)
    split = source.split("train")
    assert source.splits() == ["train"] and len(split) == 30 and len(split.dataset.parts) == 9   # 3 row groups a shard
    for index in (29, 0, 13, 14, 7):
        record = split[index]
        assert record["captions"] == [f"picture {index}."] and np.asarray(record["image"])[0, 0, 0] == index
    assert len(split.dataset._groups) <= split.dataset.keep
    mixture = Mixture({"caption": TASKS.get("caption")}, {"shards": source}, {("caption", "shards"): 1.0}, 32)
    assert {ex.target for ex in mixture.megabatch(0, 16)} <= {f"picture {i}." for i in range(30)}
    assert not (tmp_path / "hf_cache").exists()
    with pytest.raises(FileNotFoundError, match="stream=true reads parquet shards"):
        build_source("none", f"hf:{tmp_path / 'data' / 'nothing'},stream=true", 32)


def test_folder_source_reads_images_and_json(tmp_path):
    Image.fromarray(np.zeros((30, 50, 3), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "train.json").write_text(json.dumps([{"image": "a.png", "captions": ["dark."]}]))
    source = build_source("dark", str(tmp_path), 32)
    record = source.split("train")[0]
    framed, frame = frame_record(record, 32)
    assert (frame.height, frame.width) == (30, 50) and framed["image"].shape == (32, 32, 3)


def test_a_task_paired_with_a_source_lacking_its_keys_is_refused(tmp_path):
    import datasets
    source = as_source(datasets.Dataset.from_dict({"image": [np.zeros((8, 8, 3), np.uint8)], "captions": [["x"]]}), "caps")
    check_pairs([("caption", "caps")], {"caption": TASKS.get("caption")}, {"caps": source})
    with pytest.raises(ValueError, match="task 'refexp' needs the record key 'objects', which source 'caps' does not have"):
        check_pairs([("refexp", "caps")], {"refexp": TASKS.get("refexp")}, {"caps": source})


def test_mixture_specs_name_pairs():
    known = TASKS.names()
    assert parse_mixture("vqa,caption@coco:2", known) == {("vqa", "world"): 1.0, ("caption", "coco"): 2.0}
    assert parse_spec("hf:/data/x,image=img,max_depth=10") == {"kind": "hf", "path": "/data/x", "image": "img", "max_depth": 10}
    with pytest.raises(ValueError, match="unknown task"):
        parse_mixture("nope@world", known)


def test_sources_registry_is_strict():
    assert {"world", "hf", "folder"} <= set(SOURCES.names())
    with pytest.raises(KeyError, match="already registered"):
        SOURCES.register("world", object())
    with SOURCES.temporary("scratch", object):
        assert "scratch" in SOURCES
    assert "scratch" not in SOURCES


def test_a_lazy_list_is_made_once_when_first_read():
    made = []
    lazy = LazyList(lambda: made.append(1) or [["a", "b"], ["c"]])
    assert made == []
    assert lazy and len(lazy) == 2 and lazy[0] == ["a", "b"] and lazy[-1] == ["c"] and list(lazy) == [["a", "b"], ["c"]]
    assert lazy == [["a", "b"], ["c"]] and lazy == LazyList(lambda: [["a", "b"], ["c"]]) and lazy != [["a"]]
    assert made == [1] and not LazyList(list) and repr(lazy) == "[['a', 'b'], ['c']]"
