"""Keypoints read below the bin (tasks/keypoints.py, `decoding="expected"`; CoordinateTokenizer.dequantise_expected)."""
import math

import numpy as np
import pytest
import torch
from conftest import world_examples

from unio.infer.pipeline import generate_answers
from unio.model import UnioModel
from unio.task_set import configured_task
from unio.registries import TOKENIZERS


def test_a_symmetric_distribution_reads_the_bin_centre_and_a_lopsided_one_leans():
    coords = TOKENIZERS.get("coordinates")(num_bins=64)
    logp = torch.full((64,), -1e9)
    logp[[9, 10, 11]] = torch.log(torch.tensor([0.25, 0.5, 0.25]))
    assert coords.dequantise_expected(logp, 64.0, centre=10) == pytest.approx(coords.dequantise(10, 64.0))
    logp[[9, 10, 11]] = torch.log(torch.tensor([0.0, 0.5, 0.5]))
    assert coords.dequantise_expected(logp, 64.0, centre=10) == pytest.approx(11.0)        # between bins 10 and 11
    logp[14] = math.log(0.9)                                    # mass beyond the window is not read
    assert coords.dequantise_expected(logp, 64.0, centre=10, window=2) == pytest.approx(11.0)
    assert coords.dequantise_expected(logp, 64.0, centre=10, window=4) > 12.0
    edge = torch.full((64,), -1e9)
    edge[[0, 1]] = math.log(0.5)
    assert coords.dequantise_expected(edge, 64.0, centre=0) == pytest.approx(1.0)         # the window clipped at 0
    with pytest.raises(ValueError, match="expected 64 log-probabilities"):
        coords.dequantise_expected(torch.zeros(65), 64.0, centre=0)


def test_expected_keypoints_lean_where_the_steps_distribution_leans(modalities):
    likeliest, expected = configured_task("keypoints", {}), configured_task("keypoints", {"decoding": "expected"})
    example = world_examples(likeliest, "test", 1, 32)[0]
    ids = list(likeliest.targets([example], modalities)[0])
    steps = torch.full((len(ids) + 1, modalities.vocab.size), -1e9)
    steps[torch.arange(len(ids)), torch.tensor(ids)] = 0.0                  # certain of every token
    plain = likeliest.decode(ids, modalities, example)["keypoints"]
    np.testing.assert_allclose(expected.decode(ids, modalities, example, distributions=steps)["keypoints"], plain)
    k = next(i for i, (_, _, v) in enumerate(plain) if v)                    # a labelled point
    x_step, x_id = 3 * k + 1, ids[3 * k + 1]
    steps[x_step, x_id] = steps[x_step, x_id + 1] = math.log(0.5)           # its x: half its bin, half the next
    leaned = expected.decode(ids, modalities, example, distributions=steps)["keypoints"]
    bin_width = 32 / modalities["coordinates"].num_bins
    assert leaned[k][0] == pytest.approx(plain[k][0] + bin_width / 2) and leaned[k][1] == pytest.approx(plain[k][1])
    np.testing.assert_allclose(np.delete(np.asarray(leaned), k, 0), np.delete(np.asarray(plain), k, 0))


def test_generated_keypoints_read_the_steps_distributions(tiny_config, modalities):
    torch.manual_seed(0)
    model = UnioModel(tiny_config).eval()
    likeliest, expected = configured_task("keypoints", {}), configured_task("keypoints", {"decoding": "expected"})
    examples = world_examples(likeliest, "test", 3, 32)
    plain = generate_answers(model, modalities, likeliest, examples)
    read = generate_answers(model, modalities, expected, examples)
    assert [a.ids for a in plain] == [a.ids for a in read]                  # the same tokens are generated
    bin_width = 32 / modalities["coordinates"].num_bins
    moved = [abs(q - p) for a, b in zip(plain, read) for pp, qq in zip(a.prediction["keypoints"], b.prediction["keypoints"])
             for p, q in zip(pp[:2], qq[:2])]
    assert max(moved) > 0 and max(moved) <= 2 * bin_width + 1e-9           # within the window, and an untrained model is unsure
    beams = generate_answers(model, modalities, expected, examples, num_beams=2)   # no per-row distributions
    plain_beams = generate_answers(model, modalities, likeliest, examples, num_beams=2)
    assert [b.prediction["keypoints"] for b in beams] == [p.prediction["keypoints"] for p in plain_beams]


def test_decoding_option_is_checked_and_kept_by_both_layouts():
    assert configured_task("person_keypoints", {"decoding": "expected"}).num_keypoints == 17
    with pytest.raises(ValueError, match="likeliest, expected"):
        configured_task("keypoints", {"decoding": "mean"})
