"""Depth decoded from each code cell's expected latent (tasks/depth.py, `decoding="expected"`)."""
import numpy as np
import pytest
import torch
from conftest import world_examples

from unio.infer.pipeline import generate_answers
from unio.kit.image_codes import decode_expected_grid
from unio.model import UnioModel
from unio.task_set import configured_task


def certain_steps(ids, mods) -> torch.Tensor:
    """(len(ids) + 1, V) log-probabilities putting all the mass on each id in turn (then EOS's step)."""
    steps = torch.full((len(ids) + 1, mods.vocab.size), -1e9)
    steps[torch.arange(len(ids)), torch.tensor(ids)] = 0.0
    return steps


def test_a_certain_distribution_decodes_as_its_codes(modalities):
    task = configured_task("depth", {"decoding": "expected"})
    example = world_examples(task, "test", 1, 32)[0]
    ids = list(task.targets([example], modalities)[0])
    expected = task.decode(ids, modalities, example, distributions=certain_steps(ids, modalities))
    likeliest = task.decode(ids, modalities, example)
    np.testing.assert_allclose(expected, likeliest, atol=1e-5)


def test_an_uncertain_cell_decodes_from_the_mean_of_its_codes_latents(modalities):
    task = configured_task("depth", {"decoding": "expected"})
    name = task.codes.tokenizer(modalities)
    vq, start = modalities[name], modalities.vocab.range(name).start
    cells = (32 // vq.downsample) ** 2
    ids = [start + 3] * cells
    steps = certain_steps(ids, modalities)
    steps[0, start + 3] = steps[0, start + 40] = float(np.log(0.5))     # the first cell: half code 3, half code 40
    latents = vq.code_latents()[[3] * cells]
    latents[0] = (vq.code_latents()[3] + vq.code_latents()[40]) / 2
    by_hand = vq.decode_latents(latents.reshape(1, 4, 4, -1), channels=1)[0]
    got = decode_expected_grid(steps, modalities, name, 32, 32, channels=1)
    torch.testing.assert_close(got, by_hand)
    plain = vq.decode(torch.full((1, 4, 4), 3), channels=1)[0]
    assert not torch.allclose(got, plain)              # the mixed cell changed the map


def test_generated_depth_reads_the_steps_distributions(tiny_config, modalities):
    torch.manual_seed(0)
    model = UnioModel(tiny_config).eval()
    likeliest, expected = configured_task("depth", {}), configured_task("depth", {"decoding": "expected"})
    examples = world_examples(likeliest, "test", 3, 32)
    plain = generate_answers(model, modalities, likeliest, examples)
    mean = generate_answers(model, modalities, expected, examples)
    assert [a.ids for a in plain] == [a.ids for a in mean]                # the same codes are generated
    for p, m in zip(plain, mean):
        assert m.prediction.shape == p.prediction.shape == (32, 32)
        assert not np.allclose(m.prediction, p.prediction)               # an untrained model is uncertain
    beams = generate_answers(model, modalities, expected, examples, num_beams=2)   # no per-row distributions
    plain_beams = generate_answers(model, modalities, likeliest, examples, num_beams=2)
    for b, p in zip(beams, plain_beams):
        np.testing.assert_array_equal(b.prediction, p.prediction)                  # decoded from the codes


def test_each_steps_distribution_is_the_one_its_token_was_chosen_from(tiny_config, modalities):
    from unio.data.encoding import encode_inputs
    from unio.infer.pipeline import step_distributions
    from unio.model.decoding import generate_constrained, strip_answer
    torch.manual_seed(0)
    model = UnioModel(tiny_config).eval()
    task = configured_task("depth", {"decoding": "expected"})
    examples = world_examples(task, "test", 3, 32)
    inputs = encode_inputs(examples, modalities, model.config.max_text_length)
    out = generate_constrained(model, inputs, task.grammar(modalities, 32), modalities.vocab,
                               output_scores=True, return_dict_in_generate=True)
    for row, steps in zip(out.sequences[:, 1:], step_distributions(task, out)):
        ids = strip_answer(row)
        assert steps[:len(ids)].argmax(-1).tolist() == ids          # greedy: each id is its step's likeliest


def test_decoding_option_is_checked():
    with pytest.raises(ValueError, match="likeliest, expected"):
        configured_task("depth", {"decoding": "mean"})
