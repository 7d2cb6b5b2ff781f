"""`decoder_start="answer"`: the decoder starts each answer from a token of the vocabulary range the answer
begins in (Unified-IO 2's target-modality prefix), in training, generation, answer ranking and the processor."""
import numpy as np
import pytest
import torch

from unio.data.batching import Collator
from unio.grammar import answer_start_id
from unio.model.transformer import shift_right
from unio.registries import TASKS
from unio.vocab import BOS, PAD


def examples(task, n=3, size=32):
    from unio.data.records import make_example
    from unio.data.sources import build_source
    records = build_source("world", None, size).split("train")
    return [make_example(TASKS.get(task), records[i], size, np.random.default_rng(i)) for i in range(n)]


def test_each_answer_range_has_its_start_token(modalities):
    starts = {t: answer_start_id(TASKS.get(t).grammar(modalities, 32), modalities.vocab)
              for t in ("vqa", "caption", "refexp", "detection", "depth")}
    assert starts["vqa"] == starts["caption"] != starts["refexp"] == starts["detection"] != starts["depth"]
    assert BOS not in starts.values()


def test_training_inputs_start_from_the_answer_token(modalities):
    tasks = {t: TASKS.get(t) for t in ("vqa", "refexp")}
    batch_examples = examples("vqa") + examples("refexp")
    plain = Collator(tasks, modalities, 48, 40)(batch_examples)
    started = Collator(tasks, modalities, 48, 40, answer_starts=32)(batch_examples)
    assert "decoder_input_ids" not in plain and torch.equal(plain["labels"], started["labels"])
    expected = shift_right(plain["labels"], BOS, PAD)
    assert torch.equal(started["decoder_input_ids"][:, 1:], expected[:, 1:])
    first = started["decoder_input_ids"][:, 0].tolist()
    assert first[:3] == [answer_start_id(tasks["vqa"].grammar(modalities, 32), modalities.vocab)] * 3
    assert first[3:] == [answer_start_id(tasks["refexp"].grammar(modalities, 32), modalities.vocab)] * 3


def test_generation_and_ranking_start_from_the_answer_token(tiny_config, modalities):
    from unio.data.encoding import encode_inputs
    from unio.model import UnioModel
    from unio.model.decoding import generate_constrained, score_candidates
    tiny_config.decoder_start = "answer"
    torch.manual_seed(0)
    model = UnioModel(tiny_config).eval()
    task = TASKS.get("refexp")
    grammar = task.grammar(modalities, 32)
    inputs = encode_inputs(examples("refexp", 2), modalities, 48)
    out = generate_constrained(model, inputs, grammar, modalities.vocab, return_dict_in_generate=True)
    assert out.sequences[:, 0].tolist() == [answer_start_id(grammar, modalities.vocab)] * 2
    # the likelihood of the generated answer, scored from the same start, is what generation saw
    one = {k: v[:1] for k, v in inputs.items()}
    answer = out.sequences[0, 1:].tolist()
    answer = answer[:answer.index(1)] if 1 in answer else answer
    start = answer_start_id(grammar, modalities.vocab)
    assert not torch.equal(score_candidates(model, one, [answer], start), score_candidates(model, one, [answer]))


def test_the_processor_of_an_answer_start_model_passes_its_start(tiny_config, modalities):
    from unio.infer.processor import UnioProcessor
    tiny_config.decoder_start = "answer"
    processor = UnioProcessor.for_model(tiny_config, modalities)
    options = processor.generate_options("refexp")
    assert options["decoder_start_token_id"] == answer_start_id(TASKS.get("refexp").grammar(modalities, 32),
                                                                modalities.vocab)
    assert "decoder_start_token_id" not in UnioProcessor(modalities, image_size=32).generate_options("refexp")
    assert processor.to_dict()["decoder_start"] == "answer"


def test_an_unknown_decoder_start_is_refused(tiny_config):
    from unio.model import UnioConfig
    with pytest.raises(ValueError, match="decoder_start must be 'bos' or 'answer'"):
        UnioConfig(vocab_size=100, decoder_start="task")
