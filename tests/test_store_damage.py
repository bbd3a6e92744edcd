"""A damaged run store, three ways: one clear error everywhere, no folder left behind, a rebuild.

The store is real (two runs written by hand, WAL checkpointed into the file) and damaged on
disk as a disk error or a copy made mid-write would: garbage in place of the whole file, 8 KB of
random bytes after the header's page, or a file cut short.
"""
import os
import sqlite3

import pytest

from distill_core import cli, paths
from distill_core.errors import StoreDamagedError
from distill_core.runs.rebuild import rebuild_store
from distill_core.runs.store import RunStore
from tiny_runs import fake_run

RUNS = ("20260101-090000-aaaa", "20260102-090000-bbbb")


def damage(path, how: str) -> None:
    size = path.stat().st_size
    if how == "garbage":
        path.write_bytes(os.urandom(size))
    elif how == "page":  # the header page intact, the next two pages random
        with open(path, "r+b") as f:
            f.seek(4096)
            f.write(os.urandom(8192))
    else:  # truncated: the header still counts the pages that are gone
        os.truncate(path, 4096 + 1000)


@pytest.fixture(params=["garbage", "page", "truncated"])
def damaged(request, studio_home):
    store = RunStore()
    for run_id in RUNS:
        fake_run(store, run_id, paths.runs_dir())
    conn = sqlite3.connect(store.path)  # everything in the file itself, as after a clean exit
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    assert store.path.stat().st_size > 4096 + 8192 + 4096  # the damage lands inside the file
    damage(store.path, request.param)
    return store.path


def one_error_line(err: str, path) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the run store"), err
    assert str(path) in err and "is damaged" in err and "runs --rebuild" in err and "run folders are kept" in err


def test_every_store_operation_says_the_same(damaged):
    """Where the damage lies decides which queries meet it: each one answers, or names the file."""
    met = 0
    for name, operation in (("check", lambda s: s.check()), ("list_runs", lambda s: s.list_runs()),
                            ("get_run", lambda s: s.get_run(RUNS[0])), ("results", lambda s: s.results(RUNS[0])),
                            ("epochs", lambda s: s.epochs(RUNS[0])), ("scan", lambda s: s.scan()),
                            ("runs_in", lambda s: s.runs_in(paths.runs_dir() / RUNS[0])),
                            ("mark_interrupted", lambda s: s.mark_interrupted()),
                            ("create_run", lambda s: s.create_run("new", {})),
                            ("add_epoch", lambda s: s.add_epoch(RUNS[0], "teacher", {"epoch": 9})),
                            ("set_status", lambda s: s.set_status(RUNS[0], "failed")),
                            ("delete_run", lambda s: s.delete_run(RUNS[1], files=False))):
        try:
            operation(RunStore(check_interrupted=False))
        except StoreDamagedError as exc:
            assert exc.path == str(damaged) and "is damaged" in str(exc), name
            met += 1
        except sqlite3.Error as exc:  # pragma: no cover - what this test is here to catch
            pytest.fail(f"{name}: {type(exc).__name__}: {exc}")
    with pytest.raises(StoreDamagedError):
        RunStore(check_interrupted=False).check()  # damage no query has met yet is found too
    assert met >= 2


def test_the_cli_says_it_in_one_line_and_a_refused_run_leaves_no_folder(damaged, capsys):
    before = sorted(p.name for p in paths.runs_dir().iterdir())
    assert cli.main(["runs"]) == 2
    one_error_line(capsys.readouterr().err, damaged)
    assert cli.main(["run", "--dataset", "digits", "--epochs", "1", "--teacher-epochs", "1", "--quiet"]) == 2
    one_error_line(capsys.readouterr().err, damaged)
    assert sorted(p.name for p in paths.runs_dir().iterdir()) == before


def test_rebuild_moves_the_damaged_file_aside_and_lists_the_runs_again(damaged, capsys):
    kept = damaged.read_bytes()
    assert cli.main(["runs", "--rebuild"]) == 0
    out = capsys.readouterr().out
    aside = [p for p in paths.home().iterdir() if p.name.startswith("runs.db.damaged-") and p.suffix != ".db-wal"
             and not p.name.endswith(("-wal", "-shm"))]
    assert len(aside) == 1 and aside[0].read_bytes() == kept, out
    assert f"rebuilt {damaged} with 2 run(s)" in out
    assert cli.main(["runs"]) == 0
    listed = capsys.readouterr().out
    assert all(run_id in listed for run_id in RUNS)
    run = RunStore().get_run(RUNS[0])
    assert run["status"] == "done" and set(run["models"]) == {"teacher", "student_scratch", "student_kd"}


def test_rebuild_finds_runs_outside_the_runs_folder_that_the_old_store_named(studio_home, tmp_path):
    store = RunStore()
    fake_run(store, "elsewhere", tmp_path / "mine")  # a CLI run with its own --out
    fake_run(store, RUNS[0], paths.runs_dir())
    rebuilt = rebuild_store()
    assert not rebuilt.damaged and rebuilt.moved_to.name.startswith("runs.db.old-")
    assert sorted(rebuilt.runs) == sorted(["elsewhere", RUNS[0]])
    assert RunStore().get_run("elsewhere")["artifacts_dir"] == str(tmp_path / "mine" / "elsewhere")


def test_a_store_on_a_read_only_disk_is_listed_as_it_is(studio_home, capsys):
    from fs_faults import read_only

    store = RunStore()
    for run_id in RUNS:
        fake_run(store, run_id, paths.runs_dir())
    conn = sqlite3.connect(store.path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()  # as after a clean exit: no -wal or -shm, which SQLite would need to write
    with read_only(studio_home):
        assert cli.main(["runs"]) == 0
        out, err = capsys.readouterr()
        assert all(run_id in out for run_id in RUNS) and "listing it read-only" in err
        assert cli.main(["run", "--dataset", "digits", "--epochs", "1", "--teacher-epochs", "1", "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and str(studio_home) in err and len(err.strip().splitlines()) == 1
