import os

import pytest
import torch


@pytest.fixture(autouse=True)
def studio_home(tmp_path, monkeypatch):
    """Every test gets its own empty Distill Studio home: no shared cache, no stray files."""
    home = tmp_path / "studio_home"
    monkeypatch.setenv("DISTILL_STUDIO_HOME", str(home))
    return home


@pytest.fixture(autouse=True, scope="session")
def two_threads():
    torch.set_num_threads(min(2, os.cpu_count() or 1))
