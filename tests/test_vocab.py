"""The unified vocabulary: layout, stability across processes, the mismatch error."""
import json
import subprocess
import sys

import pytest

from unio.modalities import Modalities
from unio.registries import TOKENIZERS
from unio.vocab import SPECIALS, Vocabulary, VocabularyMismatch


def test_layout_order_and_contiguity(modalities):
    vocab = modalities.vocab
    names = list(vocab.ranges)
    assert names == ["text", "coordinates", "vq"]
    assert vocab.range("text").start == len(SPECIALS)
    for a, b in zip(names, names[1:]):
        assert vocab.range(a).stop == vocab.range(b).start
    assert vocab.size == vocab.range("vq").stop
    assert vocab.owner(0) == "special" and vocab.owner(vocab.range("coordinates").start) == "coordinates"


def test_global_local_round_trip_and_range_errors(modalities):
    vocab = modalities.vocab
    ids = vocab.to_global("coordinates", [0, 5, 31])
    assert vocab.to_local("coordinates", ids) == [0, 5, 31]
    with pytest.raises(ValueError, match="outside the 'coordinates' range"):
        vocab.to_global("coordinates", [10_000])


def test_layout_is_stable_across_processes(modalities, tmp_path):
    modalities.save(tmp_path)
    code = ("import json, sys; from unio.modalities import Modalities; "
            f"print(json.dumps(Modalities.load({str(tmp_path)!r}).vocab.to_json()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == modalities.vocab.to_json()


def test_mismatch_names_the_range(modalities, tmp_path):
    modalities.save(tmp_path)
    data = json.loads((tmp_path / "vocab.json").read_text())
    for r in data["ranges"]:
        if r["name"] == "coordinates":
            r["size"] += 1
    (tmp_path / "vocab.json").write_text(json.dumps(data))
    with pytest.raises(VocabularyMismatch, match="'coordinates'"):
        Modalities.load(tmp_path)


def test_changed_tokenizer_is_detected(modalities):
    other = Modalities({**modalities.tokenizers, "coordinates": TOKENIZERS.get("coordinates")(num_bins=33)})
    with pytest.raises(VocabularyMismatch, match="coordinates"):
        other.vocab.check_same(modalities.vocab)
    Vocabulary.from_json(modalities.vocab.to_json()).check_same(modalities.vocab)
