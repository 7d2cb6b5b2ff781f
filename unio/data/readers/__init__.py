"""Readers of the official dataset files, each a registered source: coco, vqav2, refcoco, nyu, coco_panoptic,
visual_genome.

pycocotools, h5py and scipy are imported only when a reader needs them (`pip install unio[data]`).
"""
from unio.data.readers import coco, coco_panoptic, nyu, refcoco, visual_genome, vqav2  # noqa: F401  (registers the sources)
