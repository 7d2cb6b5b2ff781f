#!/usr/bin/env bash
# The prepared GPU check (issue 5, item 6): the `base` preset for a few minutes in bf16, single process
# and under DeepSpeed ZeRO-2, plus the GPU's bf16 matmul rate measured in the same script.
# Usage on a CUDA machine: OUT=/tmp/gpu bash scripts/gpu_check.sh   (results in $OUT/gpu.json)
set -euo pipefail
OUT=${OUT:-/tmp/unio_gpu}
MINUTES=${MINUTES:-3}
mkdir -p "$OUT"
export UNIO_CACHE="$OUT/cache" HF_HUB_OFFLINE=1
python - <<'PY' > "$OUT/matmul.json"
import json, torch
n = 8192
a, b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16), torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
for _ in range(3): a @ b
torch.cuda.synchronize(); start, end = torch.cuda.Event(True), torch.cuda.Event(True)
start.record(); [a @ b for _ in range(20)]; end.record(); torch.cuda.synchronize()
print(json.dumps({"matmul_bf16_flop_per_s": 20 * 2 * n ** 3 / (start.elapsed_time(end) / 1000)}))
PY
python scripts/train_mixture.py --preset base --minutes "$MINUTES" --steps 100000 --batch-size 64 --vq-steps 300 \
  --no-eval --no-progress --out "$OUT/single"
torchrun --nproc_per_node "$(python -c 'import torch; print(torch.cuda.device_count())')" scripts/train_mixture.py \
  --preset base --minutes "$MINUTES" --steps 100000 --batch-size 64 --no-eval --no-progress --out "$OUT/zero2" \
  --deepspeed configs/deepspeed/zero2.json
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
result = json.loads((out / "matmul.json").read_text())
for run in ("single", "zero2"):
    rows = [json.loads(l) for l in (out / run / "metrics.jsonl").read_text().splitlines() if '"loss"' in l]
    result[run] = {"steps": rows[-1]["step"], "tokens_per_s": rows[-1]["tokens_per_s"], "loss": rows[-1]["loss"]}
(out / "gpu.json").write_text(json.dumps(result, indent=2))
print(json.dumps(result, indent=2))
PY
