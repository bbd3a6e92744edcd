"""The app when its server is in trouble: a damaged run store, a home folder it cannot write.

Every page opens, says what is wrong once, keeps Start and the demo disabled with the reason, and
shows the finished runs it can still read. Pages run through app.py (AppTest), as in
test_app_pages.py, whose helpers this file shares.
"""
import os
import sqlite3

import pytest

from distill_core import paths
from distill_core.runs.store import RunStore
from fs_faults import read_only
from test_app_pages import engine, navigation_mode, page  # noqa: F401 - fixtures and helpers
from tiny_runs import fake_run

RUNS = ("20260101-090000-aaaa", "20260102-090000-bbbb")
PAGES = ("pages/home.py", "pages/distill.py", "pages/live.py", "pages/compare.py", "pages/runs.py", "pages/learn.py",
         "pages/sweep.py")


def two_runs() -> RunStore:
    store = RunStore()
    for run_id in RUNS:
        fake_run(store, run_id, paths.runs_dir())
    conn = sqlite3.connect(store.path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()  # the last connection: SQLite removes the -wal and -shm files, as after a clean exit
    assert not store.path.with_name("runs.db-wal").exists()
    return store


def errors_naming(at, text: str) -> list[str]:
    return [e.value for e in at.error if text in e.value]


def start_of(at, path: str):
    key = {"pages/distill.py": "start", "pages/sweep.py": "sw_start"}.get(path, "home_demo")
    return at.button(key=key)


@pytest.fixture
def damaged_store(studio_home):
    store = two_runs()
    with open(store.path, "r+b") as f:  # the header kept, the next two pages random
        f.seek(4096)
        f.write(os.urandom(8192))
    return store.path


def test_a_damaged_store_is_said_once_on_every_page_and_no_run_starts(engine, damaged_store):
    for path in PAGES:
        at = page(path)  # page() fails on an exception: Streamlit's error page before
        said = errors_naming(at, str(damaged_store))
        assert len(said) == 1 and "is damaged" in said[0], (path, [e.value for e in at.error])
        if path in ("pages/home.py", "pages/distill.py"):
            assert start_of(at, path).disabled and "run store is damaged" in start_of(at, path).help
        if path == "pages/compare.py":  # the finished runs are read from their folders
            assert len(at.table) == 2 and RUNS[1] in at.selectbox(key="compare_run").value  # scores, costs


def test_the_runs_page_rebuilds_a_damaged_store_from_the_run_folders(engine, damaged_store):
    kept = damaged_store.read_bytes()
    at = page("pages/runs.py")
    assert not at.dataframe and at.button(key="runs_rebuild")
    at.button(key="runs_rebuild").click().run()
    assert not at.exception and not errors_naming(at, "damaged")
    assert "rebuilt" in at.success[0].value and "with 2 run(s)" in at.success[0].value
    assert sorted(at.dataframe[0].value["run_id"]) == sorted(RUNS)
    aside = [p for p in paths.home().glob("runs.db.damaged-*") if not p.name.endswith(("-wal", "-shm"))]
    assert len(aside) == 1 and aside[0].read_bytes() == kept
    assert not start_of(page("pages/distill.py"), "pages/distill.py").disabled


def test_every_page_opens_when_the_home_cannot_even_be_created(engine, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    home = blocker / "home"  # fails for root too: a folder cannot be made inside a file
    monkeypatch.setenv("DISTILL_STUDIO_HOME", str(home))
    for path in PAGES:
        at = page(path)
        said = errors_naming(at, str(home))
        assert len(said) == 1 and "cannot write its home folder" in said[0] and "DISTILL_STUDIO_HOME" in said[0], \
            (path, [e.value for e in at.error])
        if path in ("pages/home.py", "pages/distill.py"):
            assert start_of(at, path).disabled and "home folder cannot be written" in start_of(at, path).help


def test_a_read_only_home_still_shows_its_finished_runs(engine, studio_home):
    two_runs()
    with read_only(studio_home):
        for path in PAGES:
            at = page(path)
            said = errors_naming(at, str(studio_home))
            assert len(said) == 1 and "Read-only file system" in said[0], (path, [e.value for e in at.error])
            if path in ("pages/home.py", "pages/distill.py", "pages/sweep.py"):
                assert start_of(at, path).disabled
            if path == "pages/runs.py":
                assert sorted(at.dataframe[0].value["run_id"]) == sorted(RUNS)
            if path == "pages/compare.py":
                assert len(at.table) == 2 and len(at.table[0].value) == 3  # scores, costs
