"""World scenes written in the official dataset formats, so the readers (unio/data/readers/) can be
exercised at any scale: COCO 2017, VQAv2, refer's RefCOCO (unc), NYU Depth v2's labelled .mat, COCO
panoptic 2017 and Visual Genome's relationships.

World split -> official split: COCO (and COCO panoptic) train2017 / val2017 (train / test scenes), VQAv2
train2014 / val2014, RefCOCO train / val / testA / testB (test scenes alternate between testA and testB),
NYU's splits.mat train / test; Visual Genome has no split: the train scenes, then the test scenes. Image
ids are scene index + 1 (COCO ids start at 1).
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from unio.data.world.constants import COLORS, SHAPES, SIZES
from unio.data.world.scene import World
from unio.data.world.source import scene_record
from unio.data.world.surfaces import CLASS_NAMES

CATEGORY_NAMES = [f"{s} {c} {k}" for s in SIZES for c in COLORS for k in SHAPES]
CATEGORY_IDS = {name: 2 * i + 1 for i, name in enumerate(CATEGORY_NAMES)}     # not contiguous, as in COCO
ANSWER_TYPES = {"count": "number", "exist": "yes/no"}                         # every other world type is 'other'
VG_URL = "https://cs.stanford.edu/people/rak248"                              # where Visual Genome's urls point


def world_records(split: str, n: int, resolution: int):
    world = World(split, resolution=resolution)
    return [scene_record(scene) for scene in world.stream(0, n)]


def _save(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, quality=95)


def _dump(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _image_entry(image_id: int, name: str, image: np.ndarray) -> dict:
    return {"id": image_id, "file_name": name, "height": int(image.shape[0]), "width": int(image.shape[1])}


def _coco_annotation(ann_id: int, image_id: int, obj: dict) -> dict:
    from pycocotools import mask as mask_utils
    x1, y1, x2, y2 = (float(v) for v in obj["box"])
    rle = mask_utils.encode(np.asfortranarray(np.asarray(obj["mask"], np.uint8)))
    return {"id": ann_id, "image_id": image_id, "category_id": CATEGORY_IDS[obj["category"]], "iscrowd": 0,
            "bbox": [x1, y1, x2 - x1, y2 - y1], "area": float(mask_utils.area(rle)),
            "segmentation": {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode()}}


def write_coco(out: Path, n: int, resolution: int = 64) -> None:
    """annotations/{captions,instances}_{train2017,val2017}.json and the images in train2017/, val2017/."""
    categories = [{"id": i, "name": name, "supercategory": name.split()[-1]} for name, i in CATEGORY_IDS.items()]
    for world_split, split in (("train", "train2017"), ("test", "val2017")):
        images, captions, anns = [], [], []
        for index, record in enumerate(world_records(world_split, n, resolution)):
            image_id, name = index + 1, f"{index + 1:012d}.jpg"
            _save(record["image"], out / split / name)
            images.append(_image_entry(image_id, name, record["image"]))
            captions += [{"id": len(captions) + 1, "image_id": image_id, "caption": c} for c in record["captions"]]
            anns += [_coco_annotation(len(anns) + 1, image_id, o) for o in record["objects"]]
        _dump(out / "annotations" / f"captions_{split}.json", {"images": images, "annotations": captions})
        _dump(out / "annotations" / f"instances_{split}.json", {"images": images, "annotations": anns,
                                                                "categories": categories})


def write_vqav2(out: Path, n: int, resolution: int = 64) -> None:
    """v2_OpenEnded_mscoco_{split}_questions.json, v2_mscoco_{split}_annotations.json (the world's one
    answer given by all 10 annotators) and {split}/COCO_{split}_{id:012d}.jpg."""
    for world_split, split in (("train", "train2014"), ("test", "val2014")):
        questions, annotations = [], []
        for index, record in enumerate(world_records(world_split, n, resolution)):
            image_id = index + 1
            _save(record["image"], out / split / f"COCO_{split}_{image_id:012d}.jpg")
            for k, (question, answers, kind) in enumerate(record["questions"]):
                qid = image_id * 100 + k
                questions.append({"image_id": image_id, "question": question, "question_id": qid})
                annotations.append({"question_id": qid, "image_id": image_id, "question_type": kind,
                                    "answer_type": ANSWER_TYPES.get(kind, "other"),
                                    "multiple_choice_answer": answers[0],
                                    "answers": [{"answer": answers[0], "answer_confidence": "yes", "answer_id": i + 1}
                                                for i in range(10)]})
        common = {"data_type": "mscoco", "data_subtype": split}
        _dump(out / f"v2_OpenEnded_mscoco_{split}_questions.json", {**common, "questions": questions})
        _dump(out / f"v2_mscoco_{split}_annotations.json", {**common, "annotations": annotations})


def write_refcoco(out: Path, n: int, resolution: int = 64) -> None:
    """refer's layout: refcoco/refs(unc).p + refcoco/instances.json, images/mscoco/images/train2014/."""
    images, anns, refs = [], [], []
    for world_split in ("train", "validation", "test"):
        for index, record in enumerate(world_records(world_split, n, resolution)):
            split = {"train": "train", "validation": "val"}.get(world_split, "testA" if index % 2 == 0 else "testB")
            image_id = len(images) + 1
            name = f"COCO_train2014_{image_id:012d}.jpg"
            _save(record["image"], out / "images" / "mscoco" / "images" / "train2014" / name)
            images.append(_image_entry(image_id, name, record["image"]))
            first = len(anns) + 1
            anns += [_coco_annotation(first + j, image_id, o) for j, o in enumerate(record["objects"])]
            for text, target in record["refexps"]:
                sent_id = len(refs)
                refs.append({"ref_id": len(refs), "ann_id": first + target, "image_id": image_id, "split": split,
                             "category_id": anns[first + target - 1]["category_id"], "file_name": name,
                             "sent_ids": [sent_id], "sentences": [{"sent": text, "raw": text, "sent_id": sent_id,
                                                                   "tokens": text.split()}]})
    folder = out / "refcoco"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    categories = [{"id": i, "name": name, "supercategory": name.split()[-1]} for name, i in CATEGORY_IDS.items()]
    _dump(folder / "instances.json", {"images": images, "annotations": anns, "categories": categories})


def write_nyu(out: Path, n: int, resolution: int = 64) -> None:
    """nyu_depth_v2_labeled.mat (MATLAB v7.3: HDF5 behind a 512-byte header; images (N, 3, W, H) uint8,
    depths (N, W, H) metres) and splits.mat (1-based trainNdxs / testNdxs). Depths beyond NYU's 10 m
    (the world's sky) are outside the valid range when read back."""
    import h5py
    from scipy.io import savemat
    records = world_records("train", n, resolution) + world_records("test", n, resolution)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "nyu_depth_v2_labeled.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        f.create_dataset("images", data=np.stack([r["image"].transpose(2, 1, 0) for r in records]))
        f.create_dataset("depths", data=np.stack([r["depth"].T.astype(np.float32) for r in records]))
    with open(path, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, written by unio's world. HDF5 schema 1.00 .".ljust(116) + bytes(8) + b"\x00\x02IM")
    savemat(out / "splits.mat", {"trainNdxs": np.arange(1, n + 1, dtype=float)[:, None],
                                 "testNdxs": np.arange(n + 1, 2 * n + 1, dtype=float)[:, None]})


def _xywh(mask: np.ndarray) -> list:
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(np.ptp(xs) + 1), int(np.ptp(ys) + 1)]


def panoptic_segments(classes: np.ndarray, objects: list) -> list:
    """[(class index, mask)] of one scene: a segment per background class (sky, ground: stuff) where no
    object shows, then one per visible object (a thing), its class the shape its pixels show."""
    owner = np.full(classes.shape, -1, np.int64)
    for i, obj in enumerate(objects):
        owner[np.asarray(obj["mask"], bool)] = i
    stuff = [(int(c), (classes == c) & (owner < 0)) for c in np.unique(classes[owner < 0])]
    things = [(int(classes[owner == i][0]), owner == i) for i in range(len(objects)) if (owner == i).any()]
    return stuff + things


def panoptic_png(ids: np.ndarray) -> np.ndarray:
    """(H, W) segment ids -> the (H, W, 3) uint8 PNG (id = R + 256 G + 256^2 B)."""
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)


def write_coco_panoptic(out: Path, n: int, resolution: int = 64) -> None:
    """annotations/panoptic_{train2017,val2017}.json, the PNGs in annotations/panoptic_{split}/ and the images
    in {split}/. Categories: the world's classes (sky and ground as stuff, the shapes as things), ids not
    contiguous; segment ids spread over the PNG's three channels."""
    categories = [{"id": 2 * i + 1, "name": name, "supercategory": "shape" if name in SHAPES else "scene",
                   "isthing": int(name in SHAPES), "color": [37 * i % 256, 91 * i % 256, 53 * i % 256]}
                  for i, name in enumerate(CLASS_NAMES)]
    for world_split, split in (("train", "train2017"), ("test", "val2017")):
        images, annotations = [], []
        for index, record in enumerate(world_records(world_split, n, resolution)):
            image_id, stem = index + 1, f"{index + 1:012d}"
            _save(record["image"], out / split / f"{stem}.jpg")
            images.append(_image_entry(image_id, f"{stem}.jpg", record["image"]))
            ids, segments = np.zeros(record["image"].shape[:2], np.int64), []
            for k, (kind, mask) in enumerate(panoptic_segments(np.asarray(record["classes"]), record["objects"])):
                segment = k + 1 + 65_793 * (image_id % 255)          # 65,793 = 1 + 256 + 256^2
                ids[mask] = segment
                segments.append({"id": segment, "category_id": categories[kind]["id"], "iscrowd": 0,
                                 "bbox": _xywh(mask), "area": int(mask.sum())})
            _save(panoptic_png(ids), out / "annotations" / f"panoptic_{split}" / f"{stem}.png")
            annotations.append({"image_id": image_id, "file_name": f"{stem}.png", "segments_info": segments})
        _dump(out / "annotations" / f"panoptic_{split}.json", {
            "info": {"description": "unio's world"}, "licenses": [], "images": images, "annotations": annotations,
            "categories": categories})


def _vg_object(object_id: int, obj: dict) -> dict:
    x1, y1, x2, y2 = (float(v) for v in obj["box"])
    return {"object_id": object_id, "x": x1, "y": y1, "w": x2 - x1, "h": y2 - y1, "name": obj["category"],
            "synsets": []}


def write_visual_genome(out: Path, n: int, resolution: int = 64) -> None:
    """relationships.json and image_data.json (top-level lists, one entry per image, with or without
    relationships, as Visual Genome lists them), the train scenes' images in VG_100K/ and the test scenes'
    in VG_100K_2/, as their urls name them. Every relation of a scene is a relationship (its predicates as
    the world says them); object ids are unique in the file. The reader's `train_share=0.5` reads the
    train scenes as its train split and the test scenes as its test split."""
    images, entries = [], []
    for world_split, folder in (("train", "VG_100K"), ("test", "VG_100K_2")):
        for record in world_records(world_split, n, resolution):
            image_id = len(images) + 1
            _save(record["image"], out / folder / f"{image_id}.jpg")
            h, w = record["image"].shape[:2]
            images.append({"image_id": image_id, "url": f"{VG_URL}/{folder}/{image_id}.jpg", "width": int(w),
                           "height": int(h), "coco_id": None, "flickr_id": None})
            objects = [_vg_object(image_id * 1000 + i, o) for i, o in enumerate(record["objects"])]
            entries.append({"image_id": image_id, "relationships": [
                {"relationship_id": image_id * 1000 + k, "predicate": predicate, "synsets": [], "subject": objects[s],
                 "object": objects[o]} for k, (s, predicate, o) in enumerate(record["relations"])]})
    _dump(out / "image_data.json", images)
    _dump(out / "relationships.json", entries)


WRITERS = {"coco": write_coco, "vqav2": write_vqav2, "refcoco": write_refcoco, "nyu": write_nyu,
           "coco_panoptic": write_coco_panoptic, "visual_genome": write_visual_genome}
