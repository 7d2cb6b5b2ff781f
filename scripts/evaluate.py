"""Evaluate a model or baselines: python scripts/evaluate.py --baseline all --n 500 --json b.json"""
import sys

from unio.train.eval_cli import main, parser

__all__ = ["main", "parser"]   # parser: the options, for tests/test_commands.py

if __name__ == "__main__":
    sys.exit(main())
