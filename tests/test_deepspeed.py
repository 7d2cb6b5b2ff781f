"""DeepSpeed data parallelism on CPU: 2 processes (gloo), ZeRO-2; loss falls, ranks agree."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="deepspeed not installed")


@pytest.mark.parametrize("config", ["zero2.json"])
def test_two_process_zero_training(tmp_path, config):
    out = tmp_path / "ds"
    env = {**os.environ, "UNIO_CACHE": str(tmp_path / "cache"), "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1",
           "TORCH_EXTENSIONS_DIR": os.environ.get("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext")),
           "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
            "scripts/train_mixture.py", "--tasks", "refexp", "--preset", "toy", "--steps", "40", "--batch-size", "8",
            "--lr", "3e-3", "--warmup", "5", "--vq-steps", "10", "--log-every", "1", "--no-eval", "--no-progress", "--out", str(out),
            "--deepspeed", f"configs/deepspeed/{config}"]
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = [json.loads(line) for line in open(out / "metrics.jsonl") if '"loss"' in line]
    curve = [r["loss"] for r in rows]
    assert sum(curve[-8:]) / 8 < 0.8 * sum(curve[:8]) / 8, curve
    weights = [float((out / f"weights_rank{r}.txt").read_text()) for r in (0, 1)]
    assert weights[0] == weights[1]
    assert (out / "model" / "model.safetensors").is_file()
