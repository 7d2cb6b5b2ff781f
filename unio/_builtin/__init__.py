"""Placeholder package: in a wheel, holds the built-in plugin folders (tokenizers/, tasks/, configs/)."""
