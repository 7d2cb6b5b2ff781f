"""Evaluate a model or baselines: python scripts/evaluate.py --baseline all --n 500 --json b.json"""
import sys

from unio.train.eval_cli import main

if __name__ == "__main__":
    sys.exit(main())
