"""The Ray backend on a local Ray instance (2 CPUs, no dashboard, loopback only): the same trials,
tables and run store as the local backend, and, CPU runs being deterministic here (one thread
per trial), the same accuracies for the same seeds."""
import csv
import importlib.util
import os

import pytest

from distill_core.runs.store import RunStore
from distill_core.runs.sweep import SweepSpec
from distill_core.runs.sweep_run import run_sweep

from helpers import tiny_config

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")


@pytest.fixture(scope="module")
def ray_instance(tmp_path_factory):
    # Read when Ray loads: the instance's addresses are the loopback's, never this machine's
    # network address. Ray's token and session files go to a home of the test's own.
    # Nothing is reported to Ray's usage statistics server either.
    saved = {k: os.environ.get(k) for k in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_USAGE_STATS_ENABLED", "HOME")}
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["HOME"] = str(tmp_path_factory.mktemp("ray_home"))
    import ray
    from ray._common.usage.usage_lib import usage_stats_enabled

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")
    assert not usage_stats_enabled()
    yield ray
    ray.shutdown()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def rows(folder) -> list[dict]:
    with open(folder / "sweep.csv") as f:
        return list(csv.DictReader(f))


def test_ray_trials_match_the_local_backend(ray_instance, tmp_path):
    from distill_core.runs.sweep_ray import run_sweep_ray

    base = tiny_config(epochs=1, teacher_epochs=1, num_threads=1, latency_repeats=5, device="cpu")
    grid = {"temperature": [1.0, 4.0]}
    # One seed: the local backend's tests cover the seeds' mean and std; this one, that Ray runs the same trials.
    on_ray = run_sweep_ray(SweepSpec(base, grid, [3]), tmp_path / "ray")
    here = run_sweep(SweepSpec(base, grid, [3]), tmp_path / "local")
    assert on_ray["status"] == here["status"] == "done"
    ray_rows, local_rows = rows(tmp_path / "ray"), rows(tmp_path / "local")
    assert len(ray_rows) == len(local_rows) == 2 and (tmp_path / "ray" / "summary.csv").is_file()
    figures = ("temperature", "seed", "kd_accuracy", "scratch_accuracy", "teacher_accuracy")
    assert [{k: r[k] for k in figures} for r in ray_rows] == [{k: r[k] for k in figures} for r in local_rows]
    store = RunStore()
    runs = [store.get_run(r["run_id"]) for r in ray_rows]
    assert all(run["sweep_id"] == on_ray["sweep_id"] and run["status"] == "done" for run in runs)
    assert all(run["artifacts_dir"].startswith(str(tmp_path / "ray" / "runs")) for run in runs)
    assert sorted(run["models"]["student_scratch"]["source"] for run in runs) == ["reused", "train"]
    assert store.get_sweep(on_ray["sweep_id"])["backend"] == "ray"


def test_a_local_instance_listens_on_the_loopback_and_reports_no_usage(monkeypatch):
    """connect() without an address starts Ray with the loopback-only and no-usage-statistics
    settings in the environment, where Ray reads them."""
    import ray

    from distill_core.runs import sweep_ray

    for key in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_USAGE_STATS_ENABLED"):
        monkeypatch.setenv(key, "1")  # so that the test's end puts back what was there before
        monkeypatch.delenv(key)
    seen = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: seen.append(
        (os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"), os.environ.get("RAY_USAGE_STATS_ENABLED"), kw)))
    assert sweep_ray.connect(None) is True
    assert seen[0][:2] == ("0", "0") and seen[0][2]["include_dashboard"] is False
