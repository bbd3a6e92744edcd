"""Small configs that train in a second or two on 2 CPU cores."""
from distill_core import RunConfig


def tiny_config(**changes) -> RunConfig:
    base = RunConfig(dataset="digits", teacher="cnn_small", student="cnn_tiny", epochs=2, teacher_epochs=2,
                     batch_size=64, lr=0.05, latency_repeats=5, latency_batch=8)
    return base.replace(**changes)
