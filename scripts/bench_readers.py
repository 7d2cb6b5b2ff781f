"""Records per second of each official-format reader, on world scenes written in its format:
python scripts/bench_readers.py --resolution 640 --n 50 [--json out.json]

A record is read and framed to the model's input (`--image-size`), as training reads it: the image
decoded from its file, depth read from the HDF5 file; masks are decoded (from RLE or polygons) only
when a task reads them, so sources with masks are also measured reading every mask (`with masks`).
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from unio.data.records import frame_record
from unio.data.sources import build_source
from unio.data.world.formats import WRITERS

SPECS = {"coco": "coco", "vqav2": "vqav2", "refcoco": "refcoco/refcoco", "nyu": "nyu/nyu_depth_v2_labeled.mat"}


def records_per_second(kind: str, path: Path, image_size: int, seconds: float = 3.0, masks: bool = False) -> dict:
    """Records read and framed per second; `masks`: every object's mask read too (as a mask task does)."""
    start = time.perf_counter()
    split = build_source(kind, f"{kind}:{path}", image_size).split("train")
    indexed = time.perf_counter() - start
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        framed, _ = frame_record(split[count % len(split)], image_size)
        for obj in (framed.get("objects") or ()) if masks else ():
            obj.get("mask")
        count += 1
    return {"records_per_s": count / (time.perf_counter() - start), "index_s": indexed, "records": len(split)}


def reader_speeds(resolution: int, n: int, image_size: int, seconds: float = 3.0, log=print) -> dict:
    """{reader: records/s ...} on `n` world scenes per split written at `resolution` px in each format."""
    report = {"resolution": resolution, "image_size": image_size}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, where in SPECS.items():
            WRITERS[kind](Path(tmp) / kind, n, resolution)
            report[kind] = records_per_second(kind, Path(tmp) / where, image_size, seconds)
            log(f"{kind:8s} {report[kind]['records_per_s']:8.1f} records/s  (index {report[kind]['index_s']:.2f} s, "
                f"{report[kind]['records']} records)")
            if "objects" in build_source(kind, f"{kind}:{Path(tmp) / where}", image_size).keys:
                masks = records_per_second(kind, Path(tmp) / where, image_size, seconds, masks=True)["records_per_s"]
                report[kind]["with_masks_records_per_s"] = masks
                log(f"{kind:8s} {masks:8.1f} records/s  with masks")
    return report


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resolution", type=int, default=640, help="side of the written images")
    p.add_argument("--n", type=int, default=50, help="scenes per split")
    p.add_argument("--image-size", type=int, default=256, help="the model's input side")
    p.add_argument("--json")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    report = reader_speeds(args.resolution, args.n, args.image_size)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
