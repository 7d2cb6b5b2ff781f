"""Train a unio generalist: python scripts/train_mixture.py --tasks vqa,caption,refexp,depth"""
import os
import sys

# Before torch loads OpenMP: its threads spin 1,000 times, not 300,000, before they sleep at a barrier, so a
# thread left waiting while the data worker holds the other core gives the core back instead of spinning on
# it: ~10% off the default command's step on 2 cores (docs/training.md, "Threads and the data
# worker"). A value you set is kept.
os.environ.setdefault("GOMP_SPINCOUNT", "1000")

from unio.train.cli import main, parser  # noqa: E402  (after the environment above)

__all__ = ["main", "parser"]   # parser: the options, for tests/test_commands.py

if __name__ == "__main__":
    sys.exit(main())
