"""Training and measuring: the explicit training loop, and accuracy, size, FLOPs and latency."""
