"""Take a run's results and its student away: metrics CSV, config JSON, state_dict, ONNX.

Every export starts from the run's files (``open_run``): its config, its results (or, for a
run that never finished, what the store recorded) and its checkpoints. A model is always
rebuilt fresh with ``create_model`` and loaded from its own checkpoint, so a student export
holds the student's weights and nothing else; the teacher cannot be inside it.

ONNX goes through ``onnx_graph`` (the graph, and onnxruntime's check on the validation split);
the check's report is kept beside the file (``parity_path``).
"""
from __future__ import annotations

import csv
import io
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from .. import paths
from ..checkpoints import load_into
from ..config import RunConfig
from ..data.datasets import DataRequest, load_dataset
from ..errors import CheckpointError, DistillError, first_line, require, write_error
from ..models import create_model
from ..models.derive import student_model
from ..runs import teacher_cache
from ..runs.results import load_results, read_json, run_folder
from ..runs.store import RunStore
from ..vocab import DISTILLED, METRICS, ROLES, TEACHER
from .onnx_graph import DEFAULT_OPSET, DEFAULT_TOLERANCE, model_to_onnx, onnx_parity

FINAL_COLUMNS = ("ece", "train_agreement", "train_kl_teacher")  # per model, on its last epoch's row
CSV_COLUMNS = ("run_id", "model", "epoch", *METRICS, *FINAL_COLUMNS)
FORMATS = ("onnx", "pt", "safetensors", "csv", "json")
MIME = {"onnx": "application/octet-stream", "pt": "application/octet-stream",
        "safetensors": "application/octet-stream", "csv": "text/csv", "json": "application/json"}


# ---- a run's files --------------------------------------------------------------------------------
@dataclass
class RunFiles:
    run_id: str
    dir: Path
    config: RunConfig
    results: dict = field(default_factory=dict)
    artifacts: dict = field(default_factory=dict)

    @property
    def status(self) -> Optional[str]:
        return self.results.get("status")

    def arch(self, role: str) -> str:
        return self.config.teacher if role == "teacher" else self.config.student

    def spec(self) -> tuple[int, int, int]:
        """(in_channels, image_size, num_classes), from results.json when it says, else the data."""
        ds = self.results.get("dataset") or {}
        shape, classes = ds.get("shape"), ds.get("classes")
        if isinstance(shape, list) and len(shape) == 3 and isinstance(classes, int):
            return int(shape[0]), int(shape[-1]), int(classes)
        data = load_data(self)
        return data.in_channels, data.image_size, data.num_classes

    def checkpoint(self, role: str = DISTILLED, which: str = "last") -> Path:
        """The state_dict file of ``role`` (``which``: "last" or "best"; a teacher has one)."""
        if role not in ROLES:
            raise DistillError(f"unknown model {role!r}; choose one of {', '.join(ROLES)}")
        if role == "teacher":
            path = self.artifacts.get("teacher") or _teacher_fallback(self.config)
        else:
            if which not in ("last", "best"):
                raise DistillError(f"which must be 'last' or 'best', got {which!r}")
            path = self.artifacts.get(f"{role}_{which}") or self.dir / f"{role}_{which}.pt"
        if not path or not Path(path).is_file():
            raise CheckpointError(f"run {self.run_id} has no {role} checkpoint"
                                  + (f" ({path} is missing)" if path else "")
                                  + ("; the run may have stopped before that model finished" if self.status != "done"
                                     else ""))
        return Path(path)


def checkpoint_missing(ref: Any, role: str = DISTILLED, which: str = "last", store=None) -> Optional[str]:
    """Why a run's model file cannot be read now (unfinished; its folder deleted outside the app), or None."""
    try:
        open_run(ref, store).checkpoint(role, which)
    except DistillError as exc:
        return first_line(exc)
    return None


def _teacher_fallback(config: RunConfig) -> Optional[str]:
    if config.teacher_source == "checkpoint":
        return config.teacher_checkpoint
    path = teacher_cache.cached_path(config)
    return str(path) if path.is_file() else None


def open_run(ref: Any, store=None) -> RunFiles:
    """A run by id (the store, then the runs folder), by folder, or a ``RunFiles`` as it is."""
    if isinstance(ref, RunFiles):
        return ref
    results: Optional[dict] = None
    run_dir: Optional[Path] = None
    run_id = str(ref)
    if isinstance(ref, dict):
        results = ref
        run_id = str(ref.get("run_id") or "run")
        run_dir = Path((ref.get("artifacts") or {}).get("dir") or paths.runs_dir() / run_id)
    elif Path(str(ref)).expanduser().is_dir() and (Path(str(ref)).expanduser() / "config.json").is_file():
        run_dir = Path(str(ref)).expanduser()
        results = read_json(run_dir / "results.json")
        run_id = str((results or {}).get("run_id") or run_dir.name)
    else:
        run_dir, _ = run_folder(run_id, store)  # a store that cannot be read leaves the runs folder
        if run_dir is None:
            raise DistillError(f"no run {run_id!r} in the run store ({paths.run_store()}) or in {paths.runs_dir()}")
        results = load_results(run_id, store)
    results = dict(results or {})
    if results.get("config"):
        config = RunConfig.from_dict(results["config"])
    elif (run_dir / "config.json").is_file():
        config = RunConfig.load(run_dir / "config.json")
    else:
        raise DistillError(f"run {run_id} has no config (neither results nor {run_dir / 'config.json'})")
    results.setdefault("config", config.to_dict())
    artifacts = {k: v for k, v in (results.get("artifacts") or {}).items() if v}
    return RunFiles(run_id, run_dir, config, results, artifacts)


def load_data(run: RunFiles):
    """The run's dataset, never downloaded: a run that trained on it left it on disk."""
    c = run.config
    return load_dataset(c.dataset, DataRequest(c.data_dir, c.val_fraction, c.image_size, False, c.seed))


def build_model(run: RunFiles, role: str = DISTILLED, which: str = "last") -> nn.Module:
    """A fresh model of ``role``'s architecture with its checkpoint loaded, in eval mode, on CPU."""
    in_channels, image_size, num_classes = run.spec()
    arch, c = run.arch(role), run.config
    # a derived student's architecture follows from its teacher's and the config's fractions alone
    model = create_model(arch, in_channels, num_classes, image_size) if role == "teacher" else \
        student_model(arch, c.teacher, in_channels, num_classes, image_size, c.derive_depth, c.derive_width)
    load_into(model, run.checkpoint(role, which), arch, num_classes)
    return model.eval()


def model_metadata(run: RunFiles, role: str, which: str) -> dict[str, str]:
    """What a user of an exported file needs: architecture, shapes, classes, normalisation."""
    in_channels, image_size, num_classes = run.spec()
    ds = run.results.get("dataset") or {}
    meta = {"distill_studio.run_id": run.run_id, "distill_studio.role": role, "distill_studio.checkpoint": which,
            "arch": run.arch(role), "dataset": run.config.dataset, "in_channels": str(in_channels),
            "image_size": str(image_size), "num_classes": str(num_classes),
            "input": "float32 N x C x H x W, normalised: (pixel / 255 - mean) / std"}
    if role != TEACHER and (origin := run.results.get("student_origin") or {}).get("derived_from"):
        meta["derived_from"] = json.dumps({k: origin.get(k) for k in ("derived_from", "derivation", "init")})
    if ds.get("class_names"):
        meta["class_names"] = json.dumps(ds["class_names"])
    try:
        data = load_data(run)
        meta["mean"], meta["std"] = json.dumps(list(data.mean)), json.dumps(list(data.std))
    except DistillError:
        pass
    return meta


# ---- metrics and config -------------------------------------------------------------------------
def metrics_rows(run: Any) -> list[dict]:
    """One row per model per epoch: run_id, model, epoch, the history metrics, and a method's other
    loss terms (``train_tckd``, ...) and stage where it has them; each model's last row also has its
    calibration (ECE) and its fidelity to the teacher on the training split."""
    run = open_run(run)
    histories = dict(run.results.get("partial_history") or {})
    for role in ROLES:
        entry = run.results.get(role)
        if isinstance(entry, dict) and entry.get("history"):
            histories[role] = entry["history"]
    rows = []
    for role in [r for r in ROLES if r in histories] + sorted(set(histories) - set(ROLES)):
        for h in histories[role]:
            more = {k: v for k, v in h.items()
                    if (k.startswith("train_") and k not in METRICS and k not in FINAL_COLUMNS) or k == "stage"}
            rows.append({"run_id": run.run_id, "model": role, "epoch": h.get("epoch"),
                         **{m: h.get(m) for m in METRICS}, **more})
        entry = run.results.get(role)
        if histories[role] and isinstance(entry, dict):  # figures of the model as it ended
            rows[-1].update({k: entry.get(k) for k in FINAL_COLUMNS})
    return rows


def metrics_csv(run: Any) -> str:
    """The fixed columns (``CSV_COLUMNS``), then any other term of the method and its stage, in the
    order they first appear."""
    rows = metrics_rows(run)
    columns = list(CSV_COLUMNS)
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in columns})
    return buf.getvalue()


def config_json(run: Any) -> str:
    return open_run(run).config.to_json() + "\n"


# ---- state_dicts ----------------------------------------------------------------------------------
def state_dict(run: Any, role: str = DISTILLED, which: str = "last") -> dict[str, torch.Tensor]:
    """The checkpoint, checked against a fresh model of the architecture (keys and shapes)."""
    return build_model(open_run(run), role, which).state_dict()


def save_pt(run: Any, path: str | Path, role: str = DISTILLED, which: str = "last") -> Path:
    run = open_run(run)
    build_model(run, role, which)  # refuse a checkpoint that does not fit, with a message
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run.checkpoint(role, which), path)  # byte for byte what the run saved
    return path


def save_safetensors(run: Any, path: str | Path, role: str = DISTILLED, which: str = "last") -> Path:
    save_file = require("safetensors.torch", "safetensors export").save_file
    run = open_run(run)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict(run, role, which).items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=model_metadata(run, role, which))
    return path


# ---- ONNX ------------------------------------------------------------------------------------------
def export_onnx(run: Any, path: str | Path, role: str = DISTILLED, which: str = "last",
                opset: int = DEFAULT_OPSET, verify: bool = True, tolerance: float = DEFAULT_TOLERANCE) -> dict:
    """Export ``role`` (default: the distilled student) to ONNX and check it with onnxruntime.

    Returns {"path", "size_bytes", "opset", "role", "arch", "params", "parity": {...}} (parity
    only with ``verify``). Raises ``DistillError`` when the check fails.
    """
    run = open_run(run)
    model = build_model(run, role, which)
    in_channels, image_size, _ = run.spec()
    path = model_to_onnx(model, path, (in_channels, image_size, image_size), opset,
                         metadata=model_metadata(run, role, which))
    report = {"path": str(path), "size_bytes": path.stat().st_size, "opset": opset, "role": role,
              "arch": run.arch(role), "which": which, "params": sum(p.numel() for p in model.parameters())}
    if verify:
        report["parity"] = onnx_parity(path, model, load_data(run), tolerance)
        parity_path(path).write_text(json.dumps(report, indent=2))
        if not report["parity"]["ok"]:
            p = report["parity"]
            path.unlink(missing_ok=True)  # never offered, nor reused by export_bytes: the report stays
            raise DistillError(f"the ONNX export of {run.arch(role)} does not match PyTorch: max logit difference "
                               f"{p['max_abs_logit_diff']:.2e} (tolerance {tolerance:.0e}), "
                               f"{p['top1_mismatches']} top-1 mismatches on {p['images']} images")
    return report


def parity_path(onnx_path: str | Path) -> Path:
    """Where ``export_onnx`` keeps its check report: ``<name>.parity.json`` beside the file."""
    return Path(onnx_path).with_suffix(".parity.json")


def onnx_report(run: Any, role: str = DISTILLED, which: str = "last", store=None) -> Optional[dict]:
    """The saved report of the run's ONNX export, if it was exported and checked."""
    run = open_run(run, store)
    return read_json(parity_path(run.dir / "exports" / default_name(run, "onnx", role, which)))


# ---- one entry point for the CLI and the app -------------------------------------------------------
def default_name(run: RunFiles, fmt: str, role: str = DISTILLED, which: str = "last") -> str:
    return file_name(run.run_id, fmt, run.arch(role) if fmt not in ("csv", "json") else "", role, which)


def file_name(run_id: str, fmt: str, arch: str = "", role: str = DISTILLED, which: str = "last") -> str:
    """The name an export gets, on disk (the CLI) and as a download (the Runs page) alike."""
    if fmt == "csv":
        return f"metrics_{run_id}.csv"
    if fmt == "json":
        return f"config_{run_id}.json"
    suffix = role if role == "teacher" else f"{role}_{which}"
    return f"{arch}_{run_id}_{suffix}.{fmt}"


def export_run(ref: Any, fmt: str, out: str | Path | None = None, role: str = DISTILLED, which: str = "last",
               store=None, verify: bool = True, tolerance: float = DEFAULT_TOLERANCE, overwrite: bool = True) -> dict:
    """Write one export of a run; returns {"path", "format", "size_bytes", ...}. ``out`` is a file
    or a folder (default: the run's ``exports/`` folder). The store records the file. Without
    ``overwrite`` an existing file is refused (the CLI, for a file the user named)."""
    if fmt not in FORMATS:
        raise DistillError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    run = open_run(ref, store)
    out = Path(out).expanduser() if out else run.dir / "exports"
    path = out if out.suffix else out / default_name(run, fmt, role, which)
    if path.exists() and not overwrite:
        raise DistillError(f"{path} already exists; choose another --out, or add --overwrite to replace it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DistillError(f"cannot create the folder {path.parent}: {exc.strerror or exc}") from None
    report: dict = {"format": fmt, "run_id": run.run_id}
    try:
        if fmt == "csv":
            path.write_text(metrics_csv(run))
        elif fmt == "json":
            path.write_text(config_json(run))
        elif fmt == "pt":
            save_pt(run, path, role, which)
        elif fmt == "safetensors":
            save_safetensors(run, path, role, which)
        else:
            report.update(export_onnx(run, path, role, which, verify=verify, tolerance=tolerance))
    except OSError as exc:  # a full disk: the message names the file, which write() does not
        raise write_error(path, exc) from None
    report.update(path=str(path), size_bytes=path.stat().st_size)
    try:
        store = store if store is not None else RunStore()
        if store.get_run(run.run_id) is not None:
            store.add_artifact(run.run_id, f"export_{fmt}" + ("" if role == DISTILLED else f"_{role}"), path)
    except Exception:  # noqa: BLE001 - the file is written; the index is a convenience
        pass
    return report


def export_bytes(ref: Any, fmt: str, role: str = DISTILLED, which: str = "last", store=None) -> tuple[bytes, str, str]:
    """(data, file name, MIME type) for a download button. ONNX is written under the run's
    ``exports/`` folder once and reused while it is newer than the checkpoint."""
    run = open_run(ref, store)
    name = default_name(run, fmt, role, which)
    if fmt == "csv":
        return metrics_csv(run).encode(), name, MIME[fmt]
    if fmt == "json":
        return config_json(run).encode(), name, MIME[fmt]
    if fmt == "pt":
        return run.checkpoint(role, which).read_bytes(), name, MIME[fmt]
    path = run.dir / "exports" / name
    fresh = path.is_file() and path.stat().st_mtime >= run.checkpoint(role, which).stat().st_mtime
    if fmt == "onnx":  # and it passed its check (a file from before failed ones were removed may not have)
        fresh = fresh and ((read_json(parity_path(path)) or {}).get("parity") or {}).get("ok") is True
    if not fresh:
        export_run(run, fmt, path, role, which, store=store)
    return path.read_bytes(), name, MIME[fmt]
