"""Train a unio generalist: python scripts/train_mixture.py --tasks vqa,caption,refexp,depth"""
import sys

from unio.train.cli import main, parser

__all__ = ["main", "parser"]   # parser: the options, for tests/test_commands.py

if __name__ == "__main__":
    sys.exit(main())
