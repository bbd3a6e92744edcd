"""A model as an ONNX graph, and the check that onnxruntime computes what PyTorch does.

ONNX is written with ``torch.onnx.export(dynamo=False)`` (the TorchScript exporter: no extra
dependency; the dynamo exporter would need ``onnxscript``), opset 17, a dynamic batch axis,
input ``input`` (normalised float images, N x C x H x W) and output ``logits``. ``onnx_parity``
then runs it with onnxruntime on the whole validation split: same top-1 as PyTorch, logits
within a tolerance. ``export.export_onnx`` does both for a run's model; ``compress`` reuses the
graph and the session for int8.
"""
from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from ..errors import DistillError, first_line, require

DEFAULT_OPSET = 17
DEFAULT_TOLERANCE = 1e-3  # max |logit difference|, fp32 ONNX Runtime vs PyTorch
INPUT_NAME, OUTPUT_NAME = "input", "logits"


def ort_session(path: str | Path, threads: Optional[int] = None):
    """A CPU onnxruntime session with as many threads as torch uses (fair latency comparisons)."""
    ort = require("onnxruntime", "running ONNX")
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _pool_matrix(size_in: int, size_out: int) -> torch.Tensor:
    """[size_out, size_in] weights of adaptive average pooling along one axis (PyTorch's windows:
    floor(i * in / out) to ceil((i + 1) * in / out))."""
    m = torch.zeros(size_out, size_in)
    for i in range(size_out):
        start, end = (i * size_in) // size_out, -((-(i + 1) * size_in) // size_out)
        m[i, start:end] = 1.0 / (end - start)
    return m


class MatrixAvgPool2d(nn.Module):
    """``AdaptiveAvgPool2d`` for one fixed input size, as two matrix products.

    The TorchScript ONNX exporter refuses adaptive pooling whose output size does not divide the
    input size (``cnn_large`` pools 7x7 to 3x3 on 28x28 images); this computes the same windows
    with MatMul, which every ONNX runtime (and the int8 quantiser) handles.
    """

    def __init__(self, size_in: tuple[int, int], size_out: tuple[int, int]):
        super().__init__()
        self.register_buffer("rows", _pool_matrix(size_in[0], size_out[0]), persistent=False)
        self.register_buffer("cols", _pool_matrix(size_in[1], size_out[1]).t().contiguous(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(torch.matmul(self.rows, x), self.cols)


def exportable(model: nn.Module, input_shape: tuple[int, int, int]) -> nn.Module:
    """``model``, or a copy of it in which adaptive average pools the exporter cannot express are
    replaced by ``MatrixAvgPool2d`` for the input size they see (the ONNX input size is fixed)."""
    seen: dict[str, tuple[int, int]] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, nn.AdaptiveAvgPool2d):
            hooks.append(module.register_forward_pre_hook(
                lambda m, args, name=name: seen.__setitem__(name, tuple(args[0].shape[-2:]))))
    if not hooks:
        return model
    try:
        with torch.no_grad():
            model(torch.zeros((1, *input_shape)))
    finally:
        for h in hooks:
            h.remove()
    swap = {}
    for name, size_in in seen.items():
        out = model.get_submodule(name).output_size
        out = (out, out) if isinstance(out, int) else tuple(o if o is not None else i for o, i in zip(out, size_in))
        if any(i % o for i, o in zip(size_in, out)):
            swap[name] = MatrixAvgPool2d(size_in, out)
    if not swap:
        return model
    model = copy.deepcopy(model)
    for name, module in swap.items():
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, module)
    return model


def model_to_onnx(model: nn.Module, path: str | Path, input_shape: tuple[int, int, int],
                  opset: int = DEFAULT_OPSET, metadata: Optional[dict[str, str]] = None) -> Path:
    """Write ``model`` (fp32, eval) as ONNX with a dynamic batch axis; checked by onnx.checker."""
    onnx = require("onnx", "ONNX export")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = exportable(model.float().eval().cpu(), input_shape)
    dummy = torch.zeros((2, *input_shape))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(model, (dummy,), str(path), dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], do_constant_folding=True,
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    except Exception as exc:  # noqa: BLE001 - an architecture the exporter cannot express
        first = first_line(exc)
        raise DistillError(f"this model cannot be exported to ONNX (opset {opset}): {first}") from exc
    proto = onnx.load(str(path))
    if metadata:
        onnx.helper.set_model_props(proto, {str(k): str(v) for k, v in metadata.items()})
    proto.producer_name = "distill_studio"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path


def onnx_parity(onnx_path: str | Path, model: nn.Module, data, tolerance: float = DEFAULT_TOLERANCE,
                batch_size: int = 256) -> dict:
    """Run the ONNX file and the PyTorch model on the whole validation split and compare.

    ``ok`` needs logits within ``tolerance`` (max absolute difference) and the same top-1 on
    every image, except where PyTorch's top two logits are themselves closer than the tolerance
    (a tie, which either answer resolves fairly; counted in ``top1_ties``).
    """
    session = ort_session(onnx_path)
    model = model.float().eval().cpu()
    n = int(data.val_x.shape[0])
    labels = data.val_y.cpu()
    max_diff, mismatches, ties, right_torch, right_onnx = 0.0, 0, 0, 0, 0
    with torch.inference_mode():
        for i in range(0, n, batch_size):
            x = data.normalize(data.val_x[i:i + batch_size].cpu())
            y = labels[i:i + batch_size]
            ref = model(x)
            got = torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0])
            max_diff = max(max_diff, float((ref - got).abs().max()))
            p_ref, p_got = ref.argmax(1), got.argmax(1)
            differ = p_ref != p_got
            if differ.any():
                top2 = ref.topk(2, dim=1).values
                tie = (top2[:, 0] - top2[:, 1]) < tolerance
                ties += int((differ & tie).sum())
                mismatches += int((differ & ~tie).sum())
            right_torch += int((p_ref == y).sum())
            right_onnx += int((p_got == y).sum())
    return {"images": n, "max_abs_logit_diff": max_diff, "tolerance": tolerance,
            "top1_mismatches": mismatches, "top1_ties": ties,
            "top1_agreement": 1.0 - (mismatches + ties) / n,
            "accuracy_torch": right_torch / n, "accuracy_onnx": right_onnx / n,
            "ok": max_diff <= tolerance and mismatches == 0}
