"""unio.allocator: freed blocks kept for reuse, so training steps stop page-faulting their activations back in."""
import ctypes
import platform
import subprocess
import sys

import pytest
from conftest import ROOT

from unio.allocator import keep_freed_memory

# A training step of one transformer layer, ten times; prints the median of those steps' minor page faults and a
# gradient, in a fresh process (malloc's settings are the process's, and the tests' process has them set). The
# median, as a step that grows the heap now and then faults its new pages in either way (512 of them, seen in CI).
STEPS = """
import resource, statistics, sys, torch
from unio.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
torch.manual_seed(0)
torch.set_num_threads(1)
layer = torch.nn.TransformerEncoderLayer(128, 4, 512, batch_first=True)
x = torch.randn(32, 64, 128)
def step():
    layer(x).square().mean().backward()
for _ in range(3):
    step()
faults = []
for _ in range(10):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(statistics.median(faults), repr(layer.linear1.weight.grad.sum().item()))
"""


def faults_and_gradient(mode: str) -> tuple[float, str]:
    out = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True, check=True,
                         cwd=ROOT).stdout
    faults, gradient = out.split()
    return float(faults), gradient


def glibc_with_mallopt() -> bool:      # asked without setting anything in the tests' process
    return platform.libc_ver()[0] == "glibc" and hasattr(ctypes.CDLL(None), "mallopt")


@pytest.mark.skipif(not glibc_with_mallopt(), reason="glibc's mallopt only")
def test_kept_memory_stops_the_page_faults_of_each_step_and_changes_no_value(monkeypatch):
    monkeypatch.delenv("UNIO_KEEP_FREED_MEMORY", raising=False)
    plain_faults, plain_gradient = faults_and_gradient("plain")
    if plain_faults <= 200:
        pytest.skip(f"{plain_faults} page faults a step without the settings: this allocator (a preloaded one?) reuses "
                    "freed blocks already")
    kept_faults, kept_gradient = faults_and_gradient("keep")     # ~1,500-2,000 a step without the settings, here
    assert kept_faults < plain_faults / 4          # 0
    assert kept_gradient == plain_gradient         # where memory lives, not what is computed


def test_keep_freed_memory_answers_without_libc_mallopt_and_when_turned_off(monkeypatch):
    class NoMallopt:
        def __init__(self, name):
            pass

    monkeypatch.setattr(ctypes, "CDLL", NoMallopt)
    assert keep_freed_memory() is False
    monkeypatch.undo()
    calls = []
    monkeypatch.setattr(ctypes, "CDLL", lambda name: calls.append(name))
    monkeypatch.setenv("UNIO_KEEP_FREED_MEMORY", "0")
    assert keep_freed_memory() is False and calls == []     # the C library never asked
