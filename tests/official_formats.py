"""Tiny datasets written by hand in the official formats (COCO, VQAv2, refer's RefCOCO, NYU Depth v2's
.mat), with real photos from scikit-image's sample data where a real image matters. Independent of
unio's own writers (unio/data/world/formats.py), so a reader is checked against the format, not against us."""
import json
import struct
from pathlib import Path

import numpy as np
from PIL import Image

CATEGORIES = [{"supercategory": "person", "id": 1, "name": "person",
               "keypoints": ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
                             "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
                             "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"],
               "skeleton": [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8],
                            [7, 9], [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]},
              {"supercategory": "animal", "id": 17, "name": "cat"},
              {"supercategory": "animal", "id": 19, "name": "horse"},
              {"supercategory": "kitchen", "id": 47, "name": "cup"}]


def photos() -> dict:
    """Real photos (and the horse silhouette, as an image and as its mask) from scikit-image."""
    from skimage import data
    horse = ~data.horse()                                    # True on the horse
    horse_rgb = np.where(horse[..., None], [120, 80, 40], [200, 220, 250]).astype(np.uint8)
    return {"cat": data.chelsea(), "astronaut": data.astronaut()[::2, ::2], "horse": horse_rgb,
            "coffee": data.coffee()[::2, ::2], "rocket": data.rocket()[::2, ::2], "horse_mask": horse}


def rle_encode(mask: np.ndarray) -> dict:
    """Compressed RLE as COCO stores it ({size, counts: str}), through pycocotools."""
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(rle["size"]), "counts": rle["counts"].decode()}


def uncompressed_rle(mask: np.ndarray) -> dict:
    """Uncompressed RLE (iscrowd annotations): run lengths in column-major order, starting with zeros."""
    flat = mask.T.flatten().astype(np.uint8)
    counts, value, run = [], 0, 0
    for v in flat:
        if v != value:
            counts.append(run)
            value, run = v, 0
        run += 1
    counts.append(run)
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def save(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, quality=92)


def image_entry(image_id: int, name: str, image: np.ndarray) -> dict:
    return {"license": 1, "file_name": name, "coco_url": "", "height": int(image.shape[0]),
            "width": int(image.shape[1]), "date_captured": "2013-11-14 17:02:52", "flickr_url": "", "id": image_id}


def write_coco(root: Path) -> dict:
    """COCO 2017 layout: train2017 (cat, horse, astronaut) and val2017 (coffee, rocket). Returns what was written."""
    p = photos()
    splits = {"train2017": [(139, "cat"), (285, "horse"), (632, "astronaut")], "val2017": [(724, "coffee"), (776, "rocket")]}
    truth = {"captions": {}, "annotations": {}}
    for split, items in splits.items():
        images, captions, anns = [], [], []
        for image_id, key in items:
            name = f"{image_id:012d}.jpg"
            save(p[key], root / split / name)
            images.append(image_entry(image_id, name, p[key]))
            refs = [f"A photo of a {key} number {k}." for k in range(5)]
            truth["captions"][image_id] = refs
            captions += [{"image_id": image_id, "id": image_id * 10 + k, "caption": c} for k, c in enumerate(refs)]
            anns += _instances(image_id, key, p)
        info = {"description": "fixture", "version": "1.0", "year": 2017}
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        _dump(root / "annotations" / f"captions_{split}.json", {"info": info, "licenses": [], "images": images,
                                                                "annotations": captions})
        _dump(root / "annotations" / f"instances_{split}.json", {"info": info, "licenses": [], "images": images,
                                                                 "annotations": anns, "categories": CATEGORIES})
        people = [dict(a, num_keypoints=sum(1 for v in a["keypoints"][2::3] if v > 0)) for a in anns if "keypoints" in a]
        _dump(root / "annotations" / f"person_keypoints_{split}.json",
              {"info": info, "licenses": [], "images": images, "annotations": people, "categories": CATEGORIES[:1]})
        for a in anns:
            a.pop("keypoints", None)
        truth["annotations"].update({a["id"]: a for a in anns})
    truth["photos"] = p
    return truth


def _instances(image_id: int, key: str, p: dict) -> list:
    h, w = p[key].shape[:2]
    if key == "cat":        # a polygon (two parts) around the cat's head and body
        return [{"id": 1001, "image_id": image_id, "category_id": 17, "iscrowd": 0, "area": 20000.0,
                 "bbox": [100.0, 20.0, 250.5, 270.0],
                 "segmentation": [[100, 20, 350.5, 20, 350.5, 200, 100, 200], [150, 200, 300, 200, 300, 290, 150, 290]]}]
    if key == "horse":      # the silhouette as compressed RLE, and the same region as a crowd (uncompressed RLE)
        mask = p["horse_mask"]
        ys, xs = np.nonzero(mask)
        box = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]
        return [{"id": 1002, "image_id": image_id, "category_id": 19, "iscrowd": 0, "area": float(mask.sum()),
                 "bbox": box, "segmentation": rle_encode(mask)},
                {"id": 1003, "image_id": image_id, "category_id": 19, "iscrowd": 1, "area": float(mask.sum()),
                 "bbox": box, "segmentation": uncompressed_rle(mask)}]
    if key == "astronaut":  # a person with 17 keypoints (some absent: v = 0)
        points = []
        for k in range(17):
            points += [0, 0, 0] if k in (3, 4) else [60 + 7 * k, 40 + 9 * k, 1 if k % 5 == 0 else 2]
        return [{"id": 1004, "image_id": image_id, "category_id": 1, "iscrowd": 0, "area": 30000.0,
                 "bbox": [50.0, 30.0, 150.0, 200.0], "segmentation": [[50, 30, 200, 30, 200, 230, 50, 230]],
                 "keypoints": points}]
    return [{"id": 2000 + image_id, "image_id": image_id, "category_id": 47, "iscrowd": 0, "area": 900.0,
             "bbox": [w / 4, h / 4, w / 3, h / 3], "segmentation": [[w / 4, h / 4, w / 4 + w / 3, h / 4, w / 4, h / 4 + h / 3]]}]


def _dump(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def write_vqav2(root: Path) -> dict:
    """v2_OpenEnded_mscoco_{split}_questions.json + v2_mscoco_{split}_annotations.json over COCO 2014 images."""
    p = photos()
    items = {"train2014": [(9, "cat"), (25, "horse")], "val2014": [(42, "coffee"), (73, "rocket"), (74, "astronaut")]}
    truth = {}
    for split, images in items.items():
        questions, annotations = [], []
        for image_id, key in images:
            save(p[key], root / split / f"COCO_{split}_{image_id:012d}.jpg")
            for k, (question, answers, mca, answer_type) in enumerate(_qas(key)):
                qid = image_id * 1000 + k
                questions.append({"image_id": image_id, "question": question, "question_id": qid})
                annotations.append({"question_type": question.split()[0].lower(), "multiple_choice_answer": mca,
                                    "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1}
                                                for i, a in enumerate(answers)],
                                    "image_id": image_id, "answer_type": answer_type, "question_id": qid})
                truth[qid] = (question, answers, mca, answer_type)
        common = {"info": {"description": "fixture"}, "license": {}, "data_subtype": split, "data_type": "mscoco"}
        _dump(root / f"v2_OpenEnded_mscoco_{split}_questions.json",
              {**common, "task_type": "Open-Ended", "questions": questions})
        _dump(root / f"v2_mscoco_{split}_annotations.json", {**common, "annotations": annotations})
    return truth


def _qas(key: str) -> list:
    return [(f"What animal or thing is this {key}?", [key] * 7 + ["a " + key, "dog", key.upper()], key, "other"),
            ("Is it daytime?", ["yes"] * 4 + ["no"] * 6, "no", "yes/no"),
            ("How many are there?", ["1", "one", "1", "2", "1", "1", "one", "3", "1", "1"], "1", "number")]


def py2_pickle(obj) -> bytes:
    """A protocol-2 pickle as Python 2 writes one: str as SHORT_BINSTRING (bytes), dicts, lists, ints, floats."""
    out = bytearray(b"\x80\x02")

    def put(o):
        if isinstance(o, dict):
            out.extend(b"}(")
            for k, v in o.items():
                put(k)
                put(v)
            out.extend(b"u")
        elif isinstance(o, list):
            out.extend(b"](")
            for v in o:
                put(v)
            out.extend(b"e")
        elif isinstance(o, bool):
            out.extend(b"\x88" if o else b"\x89")
        elif isinstance(o, int):
            out.extend(b"J" + struct.pack("<i", o))
        elif isinstance(o, float):
            out.extend(b"G" + struct.pack(">d", o))
        else:
            data = o.encode("utf-8")
            out.extend((b"U" + bytes([len(data)]) if len(data) < 256 else b"T" + struct.pack("<i", len(data))) + data)

    put(obj)
    out.extend(b".")
    return bytes(out)


def write_refcoco(root: Path) -> dict:
    """refer's layout: ROOT/refcoco/{refs(unc).p, instances.json}, images in ROOT/images/mscoco/images/train2014."""
    p = photos()
    folder, image_dir = root / "refcoco", root / "images" / "mscoco" / "images" / "train2014"
    images, anns, refs = [], [], []
    layout = {"train": (9, "cat"), "val": (25, "horse"), "testA": (30, "astronaut"), "testB": (36, "coffee")}
    for n, (split, (image_id, key)) in enumerate(layout.items()):
        name = f"COCO_train2014_{image_id:012d}.jpg"
        save(p[key], image_dir / name)
        images.append(image_entry(image_id, name, p[key]))
        h, w = p[key].shape[:2]
        boxes = [[w * 0.1, h * 0.1, w * 0.3, h * 0.4], [w * 0.5, h * 0.4, w * 0.45, h * 0.5]]
        for j, box in enumerate(boxes):
            ann_id = image_id * 100 + j
            x, y, bw, bh = box
            anns.append({"id": ann_id, "image_id": image_id, "category_id": 1 if j == 0 else 17, "iscrowd": 0,
                         "area": bw * bh, "bbox": box, "segmentation": [[x, y, x + bw, y, x + bw, y + bh, x, y + bh]]})
        sents = [{"tokens": ["the", "right", key], "raw": f"The right {key}!", "sent_id": n * 10 + k,
                  "sent": f"the right {key}" if k == 0 else f"{key} on the right side"} for k in range(2)]
        refs.append({"sent_ids": [s["sent_id"] for s in sents], "file_name": f"COCO_train2014_{image_id:012d}_{image_id * 100 + 1}.jpg",
                     "ann_id": image_id * 100 + 1, "ref_id": n, "image_id": image_id, "split": split,
                     "sentences": sents, "category_id": 17})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "refs(unc).p").write_bytes(py2_pickle(refs))
    _dump(folder / "instances.json", {"info": {}, "licenses": [], "images": images, "annotations": anns,
                                      "categories": CATEGORIES})
    return {"refs": refs, "annotations": {a["id"]: a for a in anns}, "folder": folder}


def write_nyu(root: Path, n: int = 6, height: int = 48, width: int = 64) -> dict:
    """nyu_depth_v2_labeled.mat as MATLAB v7.3 writes it (HDF5 behind a 512-byte MATLAB header), arrays in
    MATLAB's axis order: images (N, 3, W, H) uint8, depths (N, W, H) float32 metres; plus splits.mat (v5)."""
    import h5py
    from scipy.io import savemat
    rng = np.random.default_rng(0)
    photo = photos()["coffee"]
    images = np.stack([np.asarray(Image.fromarray(photo).resize((width, height)))[..., ::-1] if i % 2
                       else np.asarray(Image.fromarray(photo).resize((width, height))) for i in range(n)])
    rows = np.linspace(1.0, 9.0, height, dtype=np.float32)[:, None]
    depths = np.stack([(rows + 0.05 * i + 0.01 * np.arange(width, dtype=np.float32)[None]) for i in range(n)])
    depths[:, :2, :3] = 0.0                                   # holes: no depth
    depths[0, 5, 5] = 12.0                                    # beyond the 10 m range
    path = root / "nyu_depth_v2_labeled.mat"
    root.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", userblock_size=512) as f:
        f.create_dataset("images", data=images.transpose(0, 3, 2, 1))    # (N, H, W, 3) -> (N, 3, W, H)
        f.create_dataset("depths", data=depths.transpose(0, 2, 1))       # (N, H, W) -> (N, W, H)
        f.create_dataset("rawDepths", data=depths.transpose(0, 2, 1))
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Nov 30 12:00:00 2026 HDF5 schema 1.00 ."
    with open(path, "r+b") as f:
        f.write(header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM")
    order = rng.permutation(n) + 1
    savemat(root / "splits.mat", {"trainNdxs": np.sort(order[: n // 2])[:, None].astype(float),
                                  "testNdxs": np.sort(order[n // 2:])[:, None].astype(float)})
    return {"images": images, "depths": depths, "train": sorted(int(i) - 1 for i in order[: n // 2]),
            "test": sorted(int(i) - 1 for i in order[n // 2:]), "path": path}


def add_bad_records(coco: Path, nyu: Path) -> dict:
    """One bad record of each kind, added to the fixtures written above (whose records stay as they were).
    COCO train2017: image 901's file missing, 902's truncated, 903's box without width, and annotation 9999
    of an image no file lists; val2017: image 911's file missing. NYU: one train frame whose depth is all NaN.
    Returns {kind: (file, record)} as the errors name them."""
    import h5py
    photo = photos()["coffee"][:120, :160]
    bad = {"train2017": [(901, "missing"), (902, "truncated"), (903, "box")], "val2017": [(911, "missing")]}
    for split, items in bad.items():
        files = {kind: coco / "annotations" / f"{kind}_{split}.json" for kind in ("captions", "instances")}
        data = {kind: json.loads(path.read_text()) for kind, path in files.items()}
        for image_id, kind in items:
            name = f"{image_id:012d}.jpg"
            if kind != "missing":
                save(photo, coco / split / name)
            if kind == "truncated":
                full = (coco / split / name).read_bytes()
                (coco / split / name).write_bytes(full[: len(full) // 2])
            for part in data.values():
                part["images"].append(image_entry(image_id, name, photo))
            data["captions"]["annotations"].append({"image_id": image_id, "id": image_id * 10, "caption": "A cup."})
            data["instances"]["annotations"].append({"id": image_id * 10 + 1, "image_id": image_id, "category_id": 47,
                                                     "iscrowd": 0, "area": 100.0, "segmentation": [[10, 10, 40, 10, 40, 40]],
                                                     "bbox": [10.0, 10.0, 0.0 if kind == "box" else 30.0, 30.0]})
        if split == "train2017":
            data["instances"]["annotations"].append({"id": 9999, "image_id": 999, "category_id": 47, "iscrowd": 0,
                                                     "area": 1.0, "bbox": [1.0, 1.0, 2.0, 2.0], "segmentation": []})
        for kind, path in files.items():
            _dump(path, data[kind])
    from scipy.io import loadmat
    frame = int(np.ravel(loadmat(str(nyu / "splits.mat"))["trainNdxs"])[0]) - 1
    with h5py.File(nyu / "nyu_depth_v2_labeled.mat", "r+") as f:
        f["depths"][frame] = np.nan
    train = coco / "annotations" / "instances_train2017.json"
    return {"missing": (coco / "train2017" / "000000000901.jpg", "coco/train2017/901"),
            "truncated": (coco / "train2017" / "000000000902.jpg", "coco/train2017/902"),
            "box": (train, "annotation 9031"), "unknown image": (train, "annotation 9999"),
            "nan depth": (nyu / "nyu_depth_v2_labeled.mat", f"train/{frame}")}


PANOPTIC_CATEGORIES = [{"supercategory": "animal", "isthing": 1, "id": 17, "name": "cat", "color": [255, 0, 0]},
                       {"supercategory": "animal", "isthing": 1, "id": 19, "name": "horse", "color": [0, 255, 0]},
                       {"supercategory": "sky", "isthing": 0, "id": 187, "name": "sky-other-merged", "color": [0, 0, 255]},
                       {"supercategory": "plant", "isthing": 0, "id": 193, "name": "grass-merged", "color": [9, 9, 9]}]


def write_coco_panoptic(root: Path) -> dict:
    """COCO panoptic 2017 layout: annotations/panoptic_{train2017,val2017}.json, the PNGs in
    annotations/panoptic_{split}/ (segment id = R + 256 G + 256^2 B, 0 unlabelled) and the images in {split}/.
    The horse (train): the horse, sky above row 100, grass below it, a crowd of cats in one corner and an
    unlabelled strip; the cat (val): the cat's box and grass. Returns each image's class map (indices into
    the categories' order, -1 unlabelled)."""
    p = photos()
    truth = {}
    for split, image_id, key in (("train2017", 285, "horse"), ("val2017", 139, "cat")):
        image = p[key]
        h, w = image.shape[:2]
        ids, segments, classes = np.zeros((h, w), np.int64), [], np.full((h, w), -1, np.int64)
        regions = _panoptic_regions(key, h, w, p)
        for k, (category, iscrowd, mask) in enumerate(regions):
            segment = 3_000_000 + 70_001 * k + 7         # ids that use all three channels
            ids[mask] = segment
            classes[mask] = [c["id"] for c in PANOPTIC_CATEGORIES].index(category)
            ys, xs = np.nonzero(mask)
            segments.append({"id": segment, "category_id": category, "iscrowd": iscrowd, "area": int(mask.sum()),
                             "bbox": [int(xs.min()), int(ys.min()), int(np.ptp(xs) + 1), int(np.ptp(ys) + 1)]})
        png = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
        name = f"{image_id:012d}"
        save(image, root / split / f"{name}.jpg")
        (root / "annotations" / f"panoptic_{split}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(png).save(root / "annotations" / f"panoptic_{split}" / f"{name}.png")
        _dump(root / "annotations" / f"panoptic_{split}.json", {
            "info": {"description": "fixture", "version": "1.0", "year": 2017}, "licenses": [],
            "images": [image_entry(image_id, f"{name}.jpg", image)],
            "annotations": [{"segments_info": segments, "file_name": f"{name}.png", "image_id": image_id}],
            "categories": PANOPTIC_CATEGORIES})
        truth[image_id] = classes
    return truth


def _panoptic_regions(key: str, h: int, w: int, p: dict) -> list:
    """[(category id, iscrowd, mask)] painted in order, each over what is not painted yet."""
    rows, cols = np.mgrid[0:h, 0:w]
    if key == "horse":
        horse = p["horse_mask"]
        crowd = (rows < 40) & (cols < 60) & ~horse
        unlabelled = cols >= w - 10
        sky = (rows < 100) & ~horse & ~crowd & ~unlabelled
        grass = (rows >= 100) & ~horse & ~unlabelled
        return [(19, 0, horse & ~unlabelled), (17, 1, crowd), (187, 0, sky), (193, 0, grass)]
    cat = (rows >= 20) & (rows < 200) & (cols >= 100) & (cols < 350)
    return [(17, 0, cat), (193, 0, ~cat)]


def write_visual_genome(root: Path) -> dict:
    """Visual Genome's layout: relationships.json and image_data.json (top-level lists), images in VG_100K/
    and VG_100K_2/ as the urls name them; subjects named by `name` or by a `names` list (both occur), objects
    shared between relationships by object_id, upper-case predicates, one box without area."""
    p = photos()
    layout = [(1, "VG_100K_2", "cat"), (2, "VG_100K", "horse"), (3, "VG_100K", "coffee"), (4, "VG_100K_2", "rocket")]
    images, entries = [], []
    for image_id, folder, key in layout:
        save(p[key], root / folder / f"{image_id}.jpg")
        h, w = p[key].shape[:2]
        images.append({"width": w, "url": f"https://cs.stanford.edu/people/rak248/{folder}/{image_id}.jpg",
                       "height": h, "image_id": image_id, "coco_id": None, "flickr_id": None})
        a = {"object_id": image_id * 10 + 1, "x": 10, "y": 20, "w": 30, "h": 40, "name": key, "synsets": []}
        b = {"object_id": image_id * 10 + 2, "x": 50, "y": 25, "w": 35, "h": 30, "names": ["Table "], "synsets": []}
        c = {"object_id": image_id * 10 + 3, "x": 5, "y": 5, "w": 0, "h": 8, "name": "speck", "synsets": []}
        entries.append({"image_id": image_id, "relationships": [
            {"relationship_id": image_id * 100 + 1, "predicate": "ON", "synsets": ["along.r.01"], "subject": a, "object": b},
            {"relationship_id": image_id * 100 + 2, "predicate": "next to", "synsets": [], "subject": b, "object": dict(a)},
            {"relationship_id": image_id * 100 + 3, "predicate": "near", "synsets": [], "subject": c, "object": a}]})
    _dump(root / "image_data.json", images)
    _dump(root / "relationships.json", entries)
    return {"images": images, "relationships": entries, "photos": p, "layout": layout}
