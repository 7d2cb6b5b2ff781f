"""Training a generalist: options, builders, the curriculum (stages and warm-ups), the trainer loop, its
backends (single device, DeepSpeed), checkpoints, the tokenizers' training, and the command lines."""
