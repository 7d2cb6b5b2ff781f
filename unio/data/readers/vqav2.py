"""VQAv2 from its official files: `--source vqav2=vqav2:PATH`.

    PATH/v2_OpenEnded_mscoco_{split}_questions.json   questions (image_id, question, question_id)
    PATH/v2_mscoco_{split}_annotations.json           10 answers, multiple_choice_answer, answer_type
    PATH/{split}/COCO_{split}_{image_id:012d}.jpg     the COCO images (or `images=FOLDER` holding them)
(the files may also sit in PATH/Questions and PATH/Annotations, as the official download puts them).

One record per question: `questions` holds [question, answers, answer_type] with the 10 human answers,
the multiple-choice answer moved first (the training target; prepended, making 11, in the unexpected
case that no answer equals it); the metric is the official accuracy over the answers. Splits are named by the files (train2014, val2014); splits without annotations (test2015) are
left out; 'train' is train2014, 'validation' and 'test' val2014.
"""
from __future__ import annotations

import re
from pathlib import Path

from unio.data.readers.common import BadRecord, LazySplit, ReaderSource, first_dir, image_file, load_json
from unio.registries import register_source

_QUESTIONS = re.compile(r"^(?:v2_)?OpenEnded_mscoco_(.+)_questions\.json$")
_ANNOTATIONS = re.compile(r"^(?:v2_)?mscoco_(.+)_annotations\.json$")


def vqa_files(root: Path) -> dict:
    """{split: (questions path, annotations path)} for the splits that have both."""
    questions, annotations = {}, {}
    for folder in (root, root / "Questions", root / "Annotations", root / "questions", root / "annotations"):
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            for pattern, found in ((_QUESTIONS, questions), (_ANNOTATIONS, annotations)):
                match = pattern.match(path.name)
                if match:
                    found.setdefault(match.group(1), path)
    return {s: (questions[s], annotations[s]) for s in sorted(questions) if s in annotations}


def answers_first(answers: list, first: str) -> list:
    """The 10 answers with the multiple-choice answer moved to the front (prepended if none equals it)."""
    for i, answer in enumerate(answers):
        if answer == first or answer.strip().lower() == first.strip().lower():
            return [answers[i]] + answers[:i] + answers[i + 1:]
    return [first] + answers


@register_source("vqav2")
class VQAv2Source(ReaderSource):
    """VQAv2 (or VQA v1 OpenEnded) questions joined with their annotations, over COCO images."""
    keys = ("image", "id", "source", "questions")
    role_defaults = {"train": ["train2014"], "validation": ["val2014"], "test": ["val2014"]}

    def __init__(self, path, name: str = "vqav2", images=None, train=None, validation=None, test=None):
        self.root, self.name = Path(path), name
        self.images = None if images is None else Path(images)
        self.files = vqa_files(self.root)
        self._init_splits(list(self.files), {"train": train, "validation": validation, "test": test})

    def build_split(self, name: str) -> LazySplit:
        questions_path, annotations_path = self.files[name]
        annotations = {a["question_id"]: a for a in load_json(annotations_path)["annotations"]}
        questions = load_json(questions_path)["questions"]
        problems = [BadRecord(questions_path, f"question {q['question_id']}", f"no annotation in {annotations_path}")
                    for q in questions if q["question_id"] not in annotations]
        if problems:      # left out of the split, kept as its problems
            questions = [q for q in questions if q["question_id"] in annotations]
        folder = first_dir(*(None if base is None else base / name for base in (
            self.images, self.root, self.root / "Images" / "mscoco", self.root / "images")), self.images)
        return LazySplit(questions, lambda q: self.record(q, annotations[q["question_id"]], folder, name), problems)

    def record(self, question: dict, annotation: dict, folder: Path, split: str) -> dict:
        qid, image_id = question["question_id"], question["image_id"]
        if annotation["image_id"] != image_id:
            raise BadRecord(folder, f"question {qid}", f"image {image_id} in the questions, {annotation['image_id']} "
                            "in the annotations")
        answers = answers_first([a["answer"] for a in annotation["answers"]], annotation["multiple_choice_answer"])
        path = folder / f"COCO_{split}_{image_id:012d}.jpg"
        return {"image": image_file(path, self.name, f"{split}/{qid}"), "id": f"{self.name}/{split}/{qid}",
                "source": self.name, "image_id": image_id, "question_id": qid,
                "questions": [[question["question"], answers, annotation.get("answer_type")]]}
