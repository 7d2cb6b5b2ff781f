"""Answers from a trained model: the generation pipeline, `unio.run`, the Hugging Face processor and
Auto classes, evaluation over a split, the run's report, the model card and the demo."""
