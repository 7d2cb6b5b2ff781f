"""Linear probes of the encoder: is an object attribute (shape, colour, ...) readable from its features?

Each object of a test record gives one feature vector: the encoder's outputs over the image patches,
averaged with weights = the share of each patch the object's mask covers. A softmax classifier fitted
on the train split's vectors (standardised, L2-regularised, L-BFGS) is scored on the test split's. A
high score says the encoder holds the attribute and a decoder has only to read it; a score near the
majority baseline says the encoder never learned it.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import torch
import torch.nn.functional as F

from unio.data.encoding import encode_inputs
from unio.infer.evaluation import split_examples


def object_features(model, mods, task, source, split: str, n: int, attribute: str, batch_size: int = 64):
    """(features (objects, D), labels [str]) for the objects with `attribute` of n examples of `split`."""
    size, patch = model.config.image_size, model.config.patch_size
    examples = split_examples(task, source, split, n, size)
    features, labels = [], []
    for start in range(0, len(examples), batch_size):
        batch = examples[start:start + batch_size]
        inputs = encode_inputs(batch, mods, model.config.max_text_length)
        with torch.no_grad():
            hidden = model.get_encoder()(**inputs).last_hidden_state.float()
        patches = hidden[:, :(size // patch) ** 2]
        for row, example in zip(patches, batch):
            for obj in example.record.get("objects") or ():
                value = (obj.get("attributes") or {}).get(attribute)
                if value is None or obj.get("mask") is None:
                    continue
                mask = torch.from_numpy(np.asarray(obj["mask"], np.float32))
                weights = F.avg_pool2d(mask[None, None], patch).flatten()
                if weights.sum() > 0:
                    features.append(((row * weights[:, None]).sum(0) / weights.sum()).numpy())
                    labels.append(str(value))
    if not features:
        raise ValueError(f"no object of {split!r} has the attribute {attribute!r} and a mask; "
                         f"probe an attribute the source's objects carry (the world's: shape, color, size)")
    return np.stack(features), labels


def fit_probe(features: np.ndarray, labels: list, l2: float = 1e-3, iterations: int = 500):
    """A softmax classifier on standardised features -> predict(features) -> labels."""
    classes = sorted(set(labels))
    x = torch.tensor(features, dtype=torch.float32)
    mean, scale = x.mean(0), x.std(0) + 1e-6
    x = (x - mean) / scale
    y = torch.tensor([classes.index(label) for label in labels])
    linear = torch.nn.Linear(x.shape[1], len(classes))
    optimiser = torch.optim.LBFGS(linear.parameters(), max_iter=iterations)

    def closure():
        optimiser.zero_grad()
        loss = F.cross_entropy(linear(x), y) + l2 * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)

    def predict(new_features: np.ndarray) -> list:
        with torch.no_grad():
            scores = linear((torch.tensor(new_features, dtype=torch.float32) - mean) / scale)
        return [classes[i] for i in scores.argmax(1).tolist()]
    return predict


def accuracy(predicted: list, gold: list) -> float:
    return float(np.mean([p == g for p, g in zip(predicted, gold)]))


def probe(model, mods, task, source, attribute: str, train_n: int, test_n: int) -> dict:
    """Train and test accuracy of the linear probe, and the test split's majority baseline."""
    model.eval()
    x_train, y_train = object_features(model, mods, task, source, "train", train_n, attribute)
    x_test, y_test = object_features(model, mods, task, source, "test", test_n, attribute)
    predict = fit_probe(x_train, y_train)
    majority = Counter(y_train).most_common(1)[0][0]
    return {"attribute": attribute, "objects_train": len(y_train), "objects_test": len(y_test),
            "train_accuracy": accuracy(predict(x_train), y_train),
            "test_accuracy": accuracy(predict(x_test), y_test),
            "majority_baseline": accuracy([majority] * len(y_test), y_test)}
