"""Train a unio generalist: python scripts/train_mixture.py --tasks vqa,caption,refexp,depth"""
import sys

from unio.train.cli import main

if __name__ == "__main__":
    sys.exit(main())
