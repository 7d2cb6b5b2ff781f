"""Output grammars: repeated groups decode within the grammar; the automaton agrees with the table."""
import pytest
import torch
from conftest import world_examples

from unio.data.encoding import encode_inputs
from unio.grammar import Grammar, GrammarLogitsProcessor, Repeat, Segment
from unio.model import UnioModel
from unio.model.decoding import generate_constrained, strip_answer
from unio.registries import TASKS
from unio.vocab import EOS


def detection_grammar(max_count=8):
    """A group of 4 location tokens and 1-4 text tokens, repeated 0..max_count times, then EOS."""
    return Grammar((Repeat((Segment("coordinates", 4, 4, local=(0, 32)), Segment("text", 1, 4)), 0, max_count),))


def ids(mods, name, n, offset=5):
    return [mods.vocab.range(name).start + offset + i for i in range(n)]


def test_repeat_accepts_whole_groups_only(modalities):
    g, box, word = detection_grammar(), ids(modalities, "coordinates", 4), ids(modalities, "text", 2)
    assert g.accepts([EOS], modalities.vocab)                                   # nothing found
    assert g.accepts(box + word + box + word[:1] + [EOS], modalities.vocab)
    assert not g.accepts(box + [EOS], modalities.vocab)                         # a box without a label
    assert not g.accepts(box[:3] + word + [EOS], modalities.vocab)              # three coordinates
    assert not g.accepts(box + ids(modalities, "text", 5) + [EOS], modalities.vocab)   # a label too long
    assert not g.accepts((box + word) * 9 + [EOS], modalities.vocab)            # more groups than allowed
    with pytest.raises(ValueError, match="min_count"):
        Repeat((Segment("text", 1, 1),), 3, 2)


@pytest.mark.parametrize("limit", [None, 12])
def test_automaton_agrees_with_the_table(modalities, limit):
    """A static grammar enforced by the automaton allows exactly what its position table allows."""
    from unio.grammar import Automaton, AutomatonLogitsProcessor
    grammar = Grammar((Segment("coordinates", 4, 4, local=(0, 32)), Segment("text", 2, 20)))
    table = GrammarLogitsProcessor(grammar.allowed(modalities.vocab, limit))
    automaton = AutomatonLogitsProcessor(Automaton(grammar, modalities.vocab), limit or grammar.max_length)
    prefix = [2] + ids(modalities, "coordinates", 4) + ids(modalities, "text", 16)
    for length in range(1, (limit or grammar.max_length) + 1):
        rows = torch.tensor([prefix[:length]])
        scores = torch.zeros(1, modalities.vocab.size)
        assert torch.equal(table(rows, scores.clone()) > -1e30, automaton(rows, scores.clone()) > -1e30), length


def test_the_automaton_steps_grown_rows_on_and_looks_reordered_rows_up(modalities):
    """Rows that grew by one token since the last call step on from their trie nodes; rows reordered (as beams
    reorder them) are looked up from the root: both give the masks a fresh processor gives the same rows."""
    from unio.grammar import Automaton, AutomatonLogitsProcessor
    grammar = detection_grammar()
    box, word = ids(modalities, "coordinates", 4), ids(modalities, "text", 2)
    first, second = box + word + box, ids(modalities, "coordinates", 4, offset=9) + word[:1] + box + word[:1]
    stepped = AutomatonLogitsProcessor(Automaton(grammar, modalities.vocab), grammar.max_length)

    def masks(processor, rows):
        return processor(torch.tensor(rows), torch.zeros(len(rows), modalities.vocab.size)) > -1e30

    def fresh(rows):
        return masks(AutomatonLogitsProcessor(Automaton(grammar, modalities.vocab), grammar.max_length), rows)

    steps, child = [], stepped._child
    stepped._child = lambda node, token: steps.append(token) or child(node, token)
    for n in range(len(first) + 1):
        rows = [[2] + first[:n], [2] + second[:n]]
        assert torch.equal(masks(stepped, rows), fresh(rows)), n
    assert len(steps) == 2 * len(first)   # one step a row a call: each row stepped on, never walked again
    swapped = [[2] + second + word[:1], [2] + first + word[1:]]
    assert torch.equal(masks(stepped, swapped), fresh(swapped))
    assert masks(stepped, swapped)[:, EOS].all() and not fresh([[2] + first])[0, EOS]   # a label ends; a box needs one


@pytest.mark.parametrize("options", [{}, {"do_sample": True, "top_k": 0, "temperature": 3.0}, {"num_beams": 3}])
def test_random_model_never_leaves_a_repeated_grammar(modalities, tiny_config, options):
    """Decoding from a randomly initialised model (its answers are noise) is always well formed, also
    where the grammar's longest answer (65 tokens) is beyond the model's target length (40)."""
    torch.manual_seed(2)
    model = UnioModel(tiny_config).eval()
    examples = world_examples(TASKS.get("caption"), "test", 6, tiny_config.image_size)
    inputs = encode_inputs(examples, modalities, tiny_config.max_text_length)
    grammar = detection_grammar()
    for seed in range(3):
        torch.manual_seed(seed)
        out = generate_constrained(model, inputs, grammar, modalities.vocab, **options)
        for row in out.tolist():
            answer = strip_answer(row) + [EOS]
            assert len(answer) <= tiny_config.max_target_length + 1
            assert grammar.accepts(answer, modalities.vocab), row
