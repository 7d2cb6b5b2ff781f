"""Training a generalist: options, builders, the curriculum (its first stage), the trainer loop, its
backends (single device, DeepSpeed), checkpoints, the tokenizers' training, and the command lines."""
