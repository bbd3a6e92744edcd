"""Runs for the store, export, compression and Runs-page tests.

``real_run`` trains one tiny run (digits, cnn_small teaching cnn_tiny, 1 epoch each: a few
seconds) once per test session, in its own folder, recorded in its own store. Every path is
explicit, so it does not depend on the per-test DISTILL_STUDIO_HOME. ``fake_run`` writes a
run by hand (random weights, made-up curves) in no time, for tests that need many runs.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from distill_core import RunConfig, create_model
from distill_core.checkpoints import save_state_dict
from distill_core.runs.recording import run_recorded
from distill_core.runs.store import RunStore

_REAL: dict = {}


def tiny_config(root: Path, **changes) -> RunConfig:
    base = RunConfig(dataset="digits", teacher="cnn_small", student="cnn_tiny", epochs=1, teacher_epochs=1,
                     batch_size=64, lr=0.05, latency_repeats=5, latency_batch=8, device="cpu", num_threads=1,
                     cache_dir=str(root / "teachers"))
    return base.replace(**changes)


def real_run(tmp_path_factory) -> tuple[RunStore, dict]:
    """(store, results) of one real tiny run, made once per test session in its own folder."""
    if "results" not in _REAL:
        root = tmp_path_factory.mktemp("tiny_run")
        store = RunStore(root / "runs.db")
        config = tiny_config(root, out=str(root / "runs" / "tiny"))  # num_threads=1: steady on a busy machine
        before = torch.get_num_threads()
        try:
            results = run_recorded(config, store=store, run_id="tiny")
        finally:
            torch.set_num_threads(before)
        _REAL.update(store=store, results=results)
    return _REAL["store"], _REAL["results"]


def history(epochs: int, start: float, step: float, kd: bool = False) -> list[dict]:
    return [{"epoch": e, "train_loss": 2.0 / e, "train_ce": 2.0 / e, "train_kd": 0.3 / e if kd else 0.0,
             "train_accuracy": min(0.99, start + step * e), "val_loss": 1.8 / e,
             "val_accuracy": min(0.99, start + step * e), "lr": 0.05 / e, "images_per_s": 5000.0 + e,
             "seconds": 0.5} for e in range(1, epochs + 1)]


def fake_run(store: RunStore, run_id: str, runs_dir: Path, temperature: float = 4.0, alpha: float = 0.9,
             kd_start: float = 0.6, status: str = "done", epochs: int = 3, method: str = "kd",
             extra: dict | None = None) -> dict:
    """A finished (or not) run written by hand: checkpoints, config.json, results.json, rows."""
    out = runs_dir / run_id
    config = RunConfig(dataset="digits", teacher="cnn_small", student="cnn_tiny", epochs=epochs, teacher_epochs=epochs,
                       temperature=temperature, alpha=alpha, device="cpu", out=str(out), method=method,
                       extra=dict(extra or {}))
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / "config.json")
    artifacts = {"dir": str(out)}
    torch.manual_seed(len(run_id))
    for role, arch in (("teacher", "cnn_small"), ("student_scratch", "cnn_tiny"), ("student_kd", "cnn_tiny")):
        state = create_model(arch, 1, 10, 8).state_dict()
        if role == "teacher":
            artifacts["teacher"] = str(save_state_dict(state, out / "teacher.pt"))
        else:
            for which in ("best", "last"):
                artifacts[f"{role}_{which}"] = str(save_state_dict(state, out / f"{role}_{which}.pt"))
    store.create_run(run_id, config, status="running", artifacts_dir=out, source="app")
    entries = {
        "teacher": ("cnn_small", history(epochs, 0.7, 0.08), 24058, 103000),
        "student_scratch": ("cnn_tiny", history(epochs, 0.4, 0.1), 3778, 22000),
        "student_kd": ("cnn_tiny", history(epochs, kd_start, 0.1, kd=True), 3778, 22000),
    }
    results = {"run_id": run_id, "status": status, "config": config.to_dict(), "device": "cpu",
               "dataset": {"name": "digits", "train": 1437, "val": 360, "shape": [1, 8, 8], "classes": 10,
                           "source": "sklearn", "class_names": [str(i) for i in range(10)]},
               "started_at": time.time() - 10, "finished_at": time.time(), "seconds": 10.0, "artifacts": artifacts}
    for role, (arch, hist, params, size) in entries.items():
        results[role] = {"model": arch, "role": role, "source": "train", "split": "val",
                         "accuracy": hist[-1]["val_accuracy"], "best_accuracy": hist[-1]["val_accuracy"],
                         "best_epoch": epochs, "params": params, "size_bytes": size, "history": hist,
                         "latency_ms": {"batch_1": {"median": 0.3, "p90": 0.4}, "batch_64": {"median": 1.0, "p90": 1.2},
                                        "device": "cpu", "threads": 1}}
    (out / "results.json").write_text(json.dumps(results))
    store.set_results(run_id, results)
    return results
