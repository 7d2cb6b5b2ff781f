"""The encoder probe's classifier: it reads a linearly separable attribute and cannot read noise."""
import numpy as np

from unio.train.probe import accuracy, fit_probe


def test_probe_reads_a_linearly_coded_attribute():
    rng = np.random.default_rng(0)
    labels = [["cube", "sphere", "cone"][i % 3] for i in range(300)]
    centres = {"cube": 0.0, "sphere": 8.0, "cone": 16.0}   # 4 sigma apart: Bayes accuracy > 0.99
    features = rng.normal(size=(300, 16)).astype(np.float32)
    features[:, 5] += [centres[label] for label in labels]      # one direction codes the attribute
    predict = fit_probe(features[:200], labels[:200])
    assert accuracy(predict(features[200:]), labels[200:]) > 0.95


def test_probe_stays_near_chance_on_noise():
    rng = np.random.default_rng(1)
    labels = [str(v) for v in rng.integers(0, 4, 600)]
    features = rng.normal(size=(600, 8)).astype(np.float32)
    predict = fit_probe(features[:400], labels[:400])
    assert accuracy(predict(features[400:]), labels[400:]) < 0.4
