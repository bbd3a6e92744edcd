"""Tools on a finished run: export (ONNX, PyTorch, safetensors, CSV) and compression."""
