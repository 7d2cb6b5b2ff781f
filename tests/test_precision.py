"""--precision: bf16 autocast or fp32, and `auto`'s measured choice, cached per machine."""
import json

import pytest

from unio.train import precision
from unio.train.cli import options_from, parser


def test_named_precisions_need_no_probe(monkeypatch):
    monkeypatch.setattr(precision, "probe", lambda: pytest.fail("probed for a named precision"))
    assert precision.resolve("bf16") == (True, "--precision bf16")
    assert precision.resolve("fp32") == (False, "--precision fp32")


def test_unknown_precision_names_the_choices():
    with pytest.raises(ValueError, match="'fp16' is not one of auto, bf16, fp32"):
        precision.resolve("fp16")


@pytest.mark.parametrize("speedup,chosen", [(1.74, True), (1.05, False), (0.6, False), (0.01, False)])
def test_auto_takes_bf16_only_where_it_wins(monkeypatch, tmp_path, speedup, chosen):
    monkeypatch.setenv("UNIO_CACHE", str(tmp_path))
    timed = []

    def rate(dtype, shapes=precision.SHAPES):
        timed.append((dtype, shapes))
        return 1e11 * (speedup if dtype is not precision.torch.float32 else 1)
    monkeypatch.setattr(precision, "matmul_rate", rate)
    bf16, why = precision.resolve("auto")
    assert bf16 is chosen and f"{speedup:.2f}x" in why
    # bf16 far slower on the small screen (emulated): the step's shapes are never timed in it
    screened = speedup < precision.SCREEN_LOSS
    assert ((precision.torch.bfloat16, precision.SHAPES) in timed) is not screened
    assert precision.measured()["screened"] is screened


def test_auto_probes_once_per_machine(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(precision, "probe", lambda: calls.append(1) or {"precision": "fp32", "bf16_speedup": 0.5})
    cache = tmp_path / "precision.json"
    assert precision.measured(cache)["precision"] == "fp32"
    assert precision.measured(cache)["precision"] == "fp32"
    assert len(calls) == 1
    assert list(json.loads(cache.read_text())) == [precision.machine_key()]
    monkeypatch.setattr(precision, "machine_key", lambda: "another machine")
    precision.measured(cache)
    assert len(calls) == 2 and len(json.loads(cache.read_text())) == 2


def test_an_unreadable_cache_is_measured_anew(monkeypatch, tmp_path):
    cache = tmp_path / "precision.json"
    cache.write_text("{not json")
    monkeypatch.setattr(precision, "probe", lambda: {"precision": "bf16", "bf16_speedup": 2.0})
    assert precision.measured(cache)["precision"] == "bf16"
    assert json.loads(cache.read_text())[precision.machine_key()]["precision"] == "bf16"


def test_the_probe_measures_both_rates_and_leaves_the_random_state():
    state = precision.torch.get_rng_state()
    found = precision.probe()
    assert found["fp32_flop_per_s"] > 0 and found["bf16_flop_per_s"] > 0
    assert found["precision"] in ("bf16", "fp32")
    assert precision.torch.equal(state, precision.torch.get_rng_state())


def test_the_flag_reaches_the_options():
    assert options_from(parser().parse_args(["--precision", "fp32"])).precision == "fp32"
    assert options_from(parser().parse_args([])).precision == "auto"
    with pytest.raises(SystemExit):
        parser().parse_args(["--precision", "half"])
