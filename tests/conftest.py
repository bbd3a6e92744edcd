import os

import pytest
import torch


@pytest.fixture(autouse=True)
def studio_home(tmp_path, monkeypatch):
    """Every test gets its own empty Distill Studio home: no shared cache, no stray files."""
    home = tmp_path / "studio_home"
    monkeypatch.setenv("DISTILL_STUDIO_HOME", str(home))
    return home


# One torch thread in the tests and in every process they start (the CLI, the app's server):
# they check behaviour, not speed, and on a shared 2-core machine two threads a process
# oversubscribe the cores: OpenMP's threads then wait for their descheduled twins, and a tiny run
# measured 42 s instead of 1 s. The benchmarks set their own thread counts.
os.environ["OMP_NUM_THREADS"] = "1"


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    torch.set_num_threads(1)
