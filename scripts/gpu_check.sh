#!/usr/bin/env bash
# The prepared GPU check, one command for a lent GPU machine (see ../.library/device/README.md):
#   1. the GPU's bf16 matmul rate and the model's training FLOP/s as a fraction of it (issue 4's
#      target), `base` and `large` presets, with their matmul-only ceilings -> $OUT/utilisation.json
#   2. the `base` preset trained for $MINUTES minutes in bf16, single process, then under DeepSpeed
#      ZeRO-2 -> $OUT/gpu.json (steps, tokens/s, loss of each)
# The device image has torch and transformers but not all of unio's other needs: first, here,
# `bash scripts/gpu_wheels.sh` fetches them into .whl/; then run with .whl carried:
#   device run: carry [".whl"], command "OUT=$OUT bash scripts/gpu_check.sh", timeout_s 600
# Estimated at ~8 minutes on an H200 (not yet run on one). DEVICE, PRESETS ("preset:batch ..."),
# TRAIN_PRESET, BATCH, STEPS, VQ_STEPS and WHEELS shrink it to a CPU smoke test (tests/test_scripts.py).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/unio_gpu}
WORK=${WORK:-/tmp/unio_gpu_work}          # checkpoints and caches stay here; only results go to $OUT
MINUTES=${MINUTES:-2}
DEVICE=${DEVICE:-cuda}
PRESETS=${PRESETS:-"base:64 large:32"}
TRAIN_PRESET=${TRAIN_PRESET:-base}
BATCH=${BATCH:-64}
STEPS=${STEPS:-100000}
VQ_STEPS=${VQ_STEPS:-300}
mkdir -p "$OUT" "$WORK"
WHEELS=${WHEELS:-.whl}                    # from scripts/gpu_wheels.sh, built for the device's Python
if compgen -G "$WHEELS/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" "$WHEELS"/*.whl
fi
export PYTHONPATH="$PWD:$WORK/site:${PYTHONPATH:-}" UNIO_CACHE="${UNIO_CACHE:-$WORK/cache}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
export TORCH_EXTENSIONS_DIR="${TORCH_EXTENSIONS_DIR:-$WORK/torch_extensions}"
if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
fi

python3 - "$OUT" "$DEVICE" "$PRESETS" <<'PY' 2>&1 | tee "$OUT/utilisation.log" || true
import json, sys
import torch
sys.path.insert(0, "scripts")  # scripts/benchlib.py, the bench's tools (not part of the unio package)
import benchlib as bench
out_dir, device, presets = sys.argv[1], sys.argv[2], sys.argv[3].split()
rates = bench.matmul_rates((4096, 8192) if device == "cuda" else (256, 512), device=device)
out = {"torch": torch.__version__, "device": device, "matmul_bf16": rates}
for preset, batch in (p.split(":") for p in presets):
    out[preset] = bench.preset_utilisation(preset, int(batch), rates["best"], device=device)
    print(json.dumps(out[preset]), flush=True)
open(f"{out_dir}/utilisation.json", "w").write(json.dumps(out, indent=2))
PY
[ -s "$OUT/utilisation.json" ] || echo "utilisation step failed (see utilisation.log); going on"

python3 scripts/train_mixture.py --preset "$TRAIN_PRESET" --minutes "$MINUTES" --steps "$STEPS" --batch-size "$BATCH" \
  --vq-steps "$VQ_STEPS" --no-eval --no-progress --out "$WORK/single" 2>&1 | tail -20 | tee "$OUT/single.log" || echo "single run failed"
python3 -m torch.distributed.run --nproc_per_node "$(python3 -c 'import torch; print(max(1, torch.cuda.device_count()))')" \
  scripts/train_mixture.py --preset "$TRAIN_PRESET" --minutes "$MINUTES" --steps "$STEPS" --batch-size "$BATCH" \
  --no-eval --no-progress \
  --out "$WORK/zero2" --deepspeed configs/deepspeed/zero2.json 2>&1 | tail -20 | tee "$OUT/zero2.log" || echo "zero2 run failed"
python3 - "$WORK" "$OUT" <<'PY'
import json, sys
from pathlib import Path
work, out = Path(sys.argv[1]), Path(sys.argv[2])
result = {}
for run in ("single", "zero2"):
    log = work / run / "metrics.jsonl"
    rows = [json.loads(l) for l in log.read_text().splitlines() if '"loss"' in l] if log.exists() else []
    result[run] = ({"steps": rows[-1]["step"], "tokens_per_s": rows[-1]["tokens_per_s"], "loss": rows[-1]["loss"]}
                   if rows else "no metrics (see its log)")
(out / "gpu.json").write_text(json.dumps(result, indent=2))
print(json.dumps(result, indent=2))
PY
