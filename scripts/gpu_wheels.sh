#!/usr/bin/env bash
# Run here, where PyPI is reachable, before a GPU check: fetches into .whl/ (ignored by git) the
# packages unio's training needs that the lent H200's image lacks (its package list:
# ../.library/device/KINDS.md), built for its Python 3.12, at the versions installed here.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir -p .whl
pinned() { for name in "$@"; do echo "$name==$(python3 -c "import importlib.metadata as m; print(m.version('$name'))")"; done; }
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  $(pinned vector-quantize-pytorch einx frozendict loguru torch-einops-utils hjson pydantic pydantic-core \
           annotated-types typing-inspection)
# DeepSpeed is a source release only; its wheel is pure Python (its ops compile on first use)
DS_BUILD_OPS=0 python3 -m pip wheel -q --no-deps --no-build-isolation -w .whl "$(pinned deepspeed)"
ls -l .whl
