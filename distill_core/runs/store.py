"""The run store: every run the CLI or the app starts, in one SQLite file.

``RunStore()`` opens ``<home>/runs.db`` (``DISTILL_STUDIO_HOME`` moves it, see ``paths``). It
holds each run's config, status and timestamps, the per-epoch metrics of its three models, the
finished model entries, its final results and the paths of its files.

Concurrency and crashes:

* The database is in WAL mode: readers never block the one writer, and the file stays
  readable while a run writes to it.
* Every write is one short ``BEGIN IMMEDIATE`` transaction on a fresh connection, so any thread
  or process can write; a busy database is waited for (``timeout``), never corrupted. A run
  killed mid-way leaves every row it committed before the kill.
* Each run records the process that drives it (pid, host, and the process's start time, so a
  recycled pid is not mistaken for it). Opening the store turns "running" and "queued" runs
  whose process is gone into "interrupted": after a restart nothing claims to be running. A
  run still alive in another process (a CLI run beside the app) is left alone.

Writing a run's events into the store as they come is ``recording``'s; whether a process is still
alive, ``liveness``'s.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterator, Optional


from .. import paths
from ..config import student_label
from ..errors import DistillError, StoreDamagedError
from ..vocab import ACTIVE, DONE, METRICS, QUEUED, ROLES, RUNNING, STATUSES
from .folders import remove_run_dir
from .liveness import HOST, own_token, pid_alive, process_token
from .store_errors import damaged_message, store_error
from .store_values import config_dict as _config_dict
from .store_values import dumps as _json
from .store_values import loads as _loads
from .store_values import number as _num
from .schema import upgrade

log = logging.getLogger(__name__)


def default_path() -> Path:
    """``<home>/runs.db``; ``DISTILL_STUDIO_HOME`` moves it."""
    return paths.run_store()


class RunStore:
    """Runs, their epochs, model entries, results and files, in SQLite.

    Safe to share between threads and processes: every call opens its own connection.
    """

    def __init__(self, path: str | Path | None = None, timeout: float = 30.0, check_interrupted: bool = True,
                 read_only: bool = False):
        """``read_only``: a store on a read-only disk, read as it is (SQLite cannot even open a WAL
        file there otherwise); what a writer has not yet moved from the -wal file is not seen, and
        every write is refused."""
        self.path = Path(path).expanduser() if path else default_path()
        self.timeout, self.read_only = timeout, read_only
        if read_only:
            if not self.path.is_file():
                raise DistillError(f"there is no run store at {self.path}")
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DistillError(f"the run store {self.path} cannot be created: {exc.strerror or exc} (set "
                               "DISTILL_STUDIO_HOME to a folder you can write)") from None
        with self._guard():
            self._init_schema()
        if check_interrupted:
            self.mark_interrupted()

    # ---- connections ------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            conn = sqlite3.connect(f"{self.path.absolute().as_uri()}?immutable=1", uri=True, isolation_level=None)
            conn.row_factory = sqlite3.Row
            return conn
        conn = sqlite3.connect(str(self.path), timeout=self.timeout, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")  # with WAL: durable across a process crash
        return conn

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """SQLite's errors as ones a user can act on: a damaged file is named, whichever query met it."""
        try:
            yield
        except sqlite3.Error as exc:
            translated = store_error(self.path, exc)
            if translated is exc:
                raise
            raise translated from None

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._guard():
            conn = self._connect()
            try:
                yield conn
            finally:
                conn.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction: all of it is committed, or none of it."""
        with self._guard():
            conn = self._connect()
            try:
                conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no deadlock on upgrade
                try:
                    yield conn
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):  # a damaged file may have ended it already
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                conn.close()

    def check(self) -> None:
        """Raise ``StoreDamagedError`` when any page of the file is damaged, not only those a query reads."""
        with self._read() as conn:
            found = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
        if found != ["ok"]:
            reason = str(found[0] if found else "no answer").splitlines()[0]
            raise StoreDamagedError(damaged_message(self.path, reason), str(self.path), reason)

    def _init_schema(self) -> None:
        conn = self._connect()
        try:
            upgrade(conn, self.timeout)
        finally:
            conn.close()

    # ---- writes ----------------------------------------------------------------------------
    def create_run(self, run_id: str, config: Any, status: str = QUEUED, artifacts_dir: str | Path | None = None,
                   source: str = "cli", pid: Optional[int] = None, if_new: bool = False,
                   sweep_id: Optional[str] = None) -> None:
        """Add a run, or (same id) take it over: a queued app job that now starts, a rerun.

        The calling process is recorded as the run's owner unless ``pid`` says otherwise. With
        ``if_new`` a run already there is left as it is: the job manager writes "queued" outside
        its lock, and by then the job may have started (or been cancelled) and written its row.
        ``sweep_id``: the sweep this run is a trial of.
        """
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        cfg = _config_dict(config)
        if artifacts_dir is None:
            artifacts_dir = cfg.get("out") or (paths.runs_dir() / run_id)
        now = time.time()
        pid = os.getpid() if pid is None else pid
        token = own_token() if pid == os.getpid() else process_token(pid)
        values = dict(id=run_id, now=now, status=status, started=now if status == RUNNING else None,
                      dataset=cfg.get("dataset"), teacher=cfg.get("teacher"), student=student_label(cfg),
                      method=cfg.get("method"), temperature=_num(cfg.get("temperature")),
                      alpha=_num(cfg.get("alpha")), epochs=cfg.get("epochs"), seed=cfg.get("seed"),
                      device=cfg.get("device"), config=_json(cfg), dir=str(Path(artifacts_dir).expanduser()),
                      source=source, pid=pid, host=HOST, token=token, sweep=sweep_id)
        with self._write() as conn:
            conn.execute(
                """INSERT INTO runs (id, created_at, updated_at, started_at, status, dataset, teacher, student,
                       method, temperature, alpha, epochs, seed, device, config, artifacts_dir, source, pid, host,
                       proc_token, sweep_id)
                   VALUES (:id, :now, :now, :started, :status, :dataset, :teacher, :student, :method, :temperature,
                       :alpha, :epochs, :seed, :device, :config, :dir, :source, :pid, :host, :token, :sweep)
                   ON CONFLICT (id) DO """ + ("NOTHING" if if_new else """UPDATE SET
                       updated_at = :now, status = :status, started_at = COALESCE(runs.started_at, :started),
                       dataset = :dataset, teacher = :teacher, student = :student, method = :method,
                       temperature = :temperature, alpha = :alpha, epochs = :epochs, seed = :seed,
                       device = :device, config = :config, artifacts_dir = :dir, pid = :pid, host = :host,
                       proc_token = :token, error = NULL, sweep_id = COALESCE(:sweep, runs.sweep_id)"""), values)

    def set_status(self, run_id: str, status: str, message: Optional[str] = None, error: Optional[str] = None,
                   device: Optional[str] = None, artifacts_dir: Optional[str] = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        now = time.time()
        with self._write() as conn:
            conn.execute(
                """UPDATE runs SET status = ?, updated_at = ?, message = COALESCE(?, message),
                       error = COALESCE(?, error), device = COALESCE(?, device),
                       artifacts_dir = COALESCE(?, artifacts_dir),
                       started_at = CASE WHEN ? = 'running' THEN COALESCE(started_at, ?) ELSE started_at END,
                       finished_at = CASE WHEN ? IN ('done', 'failed', 'cancelled', 'interrupted')
                                          THEN COALESCE(finished_at, ?) ELSE finished_at END
                   WHERE id = ?""",
                (status, now, message, error, device, artifacts_dir, status, now, status, now, run_id))

    def add_epoch(self, run_id: str, model: str, row: dict) -> None:
        """One history row (docs/architecture.md, "results.json") of one model; the same epoch again replaces it."""
        with self._write() as conn:
            self._put_epochs(conn, run_id, model, [row], replace=True)
            conn.execute("UPDATE runs SET updated_at = ? WHERE id = ?", (time.time(), run_id))

    def set_model(self, run_id: str, role: str, entry: dict) -> None:
        """A finished model's entry (a RESULT event); its history fills in epochs not yet recorded
        (a cached teacher sends no epoch events)."""
        with self._write() as conn:
            self._put_model(conn, run_id, role, entry)
            conn.execute("UPDATE runs SET updated_at = ? WHERE id = ?", (time.time(), run_id))

    def set_results(self, run_id: str, results: dict) -> None:
        """The dict ``run_experiment`` returned: its status, entries, epochs and files, at once."""
        now = time.time()
        status = results.get("status") if results.get("status") in STATUSES else DONE
        if status in ACTIVE:
            status = DONE
        artifacts = dict(results.get("artifacts") or {})
        with self._write() as conn:
            exists = conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone()
            if not exists:
                self._insert_imported(conn, run_id, results)
            conn.execute(
                """UPDATE runs SET status = ?, updated_at = ?, results = ?, device = COALESCE(?, device),
                       started_at = COALESCE(?, started_at), finished_at = COALESCE(?, finished_at, ?),
                       artifacts_dir = COALESCE(?, artifacts_dir),
                       message = ? WHERE id = ?""",
                (status, now, _json(results), results.get("device"), results.get("started_at"),
                 results.get("finished_at"), now, artifacts.get("dir"), "finished" if status == DONE else status,
                 run_id))
            for role in ROLES:
                if isinstance(results.get(role), dict):
                    self._put_model(conn, run_id, role, results[role])
            for kind, path in artifacts.items():
                if kind != "dir" and path:
                    self._put_artifact(conn, run_id, kind, path)

    def add_artifact(self, run_id: str, kind: str, path: str | Path) -> None:
        with self._write() as conn:
            self._put_artifact(conn, run_id, kind, path)

    def delete_run(self, run_id: str, files: bool = True) -> bool:
        """Remove a run's rows and (``files``) its folder. Shared files (the teacher cache, a
        user's checkpoint) are never touched. Returns False for an unknown run."""
        run = self.get_run(run_id)
        if run is None:
            return False
        if run["status"] in ACTIVE and pid_alive(run.get("pid"), run.get("proc_token")):
            raise DistillError(f"run {run_id} is still {run['status']} (process {run['pid']}); stop it first")
        with self._write() as conn:
            conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))  # epochs, models, artifacts cascade
        if files and run.get("artifacts_dir"):
            remove_run_dir(run["artifacts_dir"], run_id)
        return True

    def mark_interrupted(self) -> list[str]:
        """Runs that claim to be queued or running but whose process is gone become "interrupted".

        A run owned by another host cannot be checked and is left as it is.
        """
        sql = "SELECT id, pid, host, proc_token FROM runs WHERE status IN ('queued', 'running')"

        def dead(rows) -> list[str]:
            return [r["id"] for r in rows if r["host"] in (None, HOST) and not pid_alive(r["pid"], r["proc_token"])]

        if not dead(self._rows(sql)):
            return []  # the common case: no write lock taken
        with self._write() as conn:
            gone = dead(conn.execute(sql).fetchall())
            now = time.time()
            for run_id in gone:
                conn.execute("""UPDATE runs SET status = 'interrupted', updated_at = ?, finished_at = ?,
                                    message = 'the process running it ended before the run finished'
                                WHERE id = ? AND status IN ('queued', 'running')""", (now, now, run_id))
        return gone

    def import_dir(self, run_dir: str | Path) -> Optional[str]:
        """Index a run folder with a results.json (a run from before the store, or copied in).
        Returns its run id, or None when there is nothing to import or it is known already."""
        run_dir = Path(run_dir)
        try:
            results = json.loads((run_dir / "results.json").read_text())
        except (OSError, json.JSONDecodeError):
            return None
        if not isinstance(results, dict):
            return None
        run_id = str(results.get("run_id") or run_dir.name)
        if self.get_run(run_id) is not None:
            return None
        results.setdefault("artifacts", {}).setdefault("dir", str(run_dir))
        self.set_results(run_id, results)
        return run_id

    def scan(self, root: str | Path | None = None) -> list[str]:
        """Import every run folder under ``root`` (default: the runs folder) not yet in the store."""
        root = Path(root) if root else paths.runs_dir()
        if not root.is_dir():
            return []
        known = {r["artifacts_dir"] for r in self._rows("SELECT artifacts_dir FROM runs")}
        found = []
        for results in sorted(root.glob("*/results.json")):
            if str(results.parent) not in known:
                run_id = self.import_dir(results.parent)
                if run_id:
                    found.append(run_id)
        return found

    # ---- reads -----------------------------------------------------------------------------
    def _rows(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._read() as conn:
            return conn.execute(sql, args).fetchall()

    def runs_in(self, folder: str | Path) -> list[tuple[str, str]]:
        """(run id, status) of the runs whose files are in ``folder``."""
        rows = self._rows("SELECT id, status FROM runs WHERE artifacts_dir = ?",
                          (str(Path(folder).expanduser().absolute()),))
        return [(r["id"], r["status"]) for r in rows]

    def get_run(self, run_id: str) -> Optional[dict]:
        """The run row with config, results, model entries and artifacts decoded; None if unknown."""
        with self._read() as conn:
            row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                return None
            models = conn.execute("SELECT role, entry FROM models WHERE run_id = ?", (run_id,)).fetchall()
            arts = conn.execute("SELECT kind, path FROM artifacts WHERE run_id = ?", (run_id,)).fetchall()
        run = dict(row)
        run["config"] = _loads(row["config"]) or {}
        run["results"] = _loads(row["results"])
        run["models"] = {m["role"]: _loads(m["entry"]) or {} for m in models}
        run["artifacts"] = {a["kind"]: a["path"] for a in arts}
        return run

    def results(self, run_id: str) -> Optional[dict]:
        """results.json of a run; for a run that never returned (interrupted, failed, still
        running), the same shape built from what was recorded: finished entries, histories."""
        run = self.get_run(run_id)
        if run is None:
            return None
        if run["results"]:
            return run["results"]
        history: dict[str, list[dict]] = {}
        for row in self.epochs(run_id):
            history.setdefault(row["model"], []).append({k: v for k, v in row.items() if k not in ("run_id", "model")})
        out = {"run_id": run_id, "status": run["status"], "config": run["config"], "device": run["device"],
               "started_at": run["started_at"], "finished_at": run["finished_at"], "error": run["error"],
               "artifacts": {"dir": run["artifacts_dir"], **run["artifacts"]}}
        for role, entry in run["models"].items():
            out[role] = {**entry, "history": history.get(role, [])}
        out["partial_history"] = {k: v for k, v in history.items() if k not in run["models"]}
        return out

    def epochs(self, run_id: str, model: Optional[str] = None) -> list[dict]:
        """Per-epoch rows ({run_id, model, epoch, metrics..., and the method's other terms}), teacher
        first, by epoch."""
        order = "CASE model WHEN 'teacher' THEN 0 WHEN 'student_scratch' THEN 1 WHEN 'student_kd' THEN 2 ELSE 3 END"
        sql = f"SELECT run_id, model, epoch, {', '.join(METRICS)}, terms FROM epochs WHERE run_id = ?"
        args: tuple = (run_id,)
        if model:
            sql += " AND model = ?"
            args += (model,)
        rows = []
        for r in self._rows(sql + f" ORDER BY {order}, epoch", args):
            row = dict(r)
            row.update(_loads(row.pop("terms")) or {})
            rows.append(row)
        return rows

    def list_runs(self, status: Optional[str] = None, dataset: Optional[str] = None,
                  limit: Optional[int] = None, sweep_id: Optional[str] = None) -> list[dict]:
        """One summary row per run, newest first, ready for a table (see ``runs_frame``).

        Accuracies are the last epoch's, on the validation split (0..1); gain is KD minus
        scratch in percentage points. A run that did not finish shows what it reached.
        """
        sql = """SELECT r.id, r.created_at, r.started_at, r.finished_at, r.status, r.dataset, r.teacher,
                        r.student, r.method, r.temperature, r.alpha, r.epochs, r.seed, r.device, r.source,
                        r.artifacts_dir, r.error, r.message, r.sweep_id, r.config,
                        t.accuracy AS teacher_accuracy, s.accuracy AS scratch_accuracy, k.accuracy AS kd_accuracy,
                        json_extract(k.entry, '$.val_agreement') AS kd_agreement
                 FROM runs r
                 LEFT JOIN models t ON t.run_id = r.id AND t.role = 'teacher'
                 LEFT JOIN models s ON s.run_id = r.id AND s.role = 'student_scratch'
                 LEFT JOIN models k ON k.run_id = r.id AND k.role = 'student_kd'"""
        where, args = [], []
        if status:
            where.append("r.status = ?")
            args.append(status)
        if dataset:
            where.append("r.dataset = ?")
            args.append(dataset)
        if sweep_id:
            where.append("r.sweep_id = ?")
            args.append(sweep_id)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY r.created_at DESC, r.id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        out = []
        for r in self._rows(sql, tuple(args)):
            kd, scratch = r["kd_accuracy"], r["scratch_accuracy"]
            end = r["finished_at"]
            out.append({
                "run_id": r["id"], "date": time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"])),
                "created_at": r["created_at"], "dataset": r["dataset"], "teacher": r["teacher"],
                "student": r["student"], "T": r["temperature"], "alpha": r["alpha"], "method": r["method"],
                "options": (_loads(r["config"]) or {}).get("extra") or {},  # the method's, as set
                "epochs": r["epochs"], "teacher_accuracy": r["teacher_accuracy"], "kd_accuracy": kd,
                "scratch_accuracy": scratch, "kd_agreement": r["kd_agreement"],
                "gain_points": 100.0 * (kd - scratch) if kd is not None and scratch is not None else None,
                "status": r["status"], "device": r["device"], "source": r["source"],
                "seconds": end - r["started_at"] if end and r["started_at"] else None,
                "dir": r["artifacts_dir"], "error": r["error"], "sweep_id": r["sweep_id"],
                "seed": r["seed"], "config": _loads(r["config"]) or {},
            })
        return out

    def runs_frame(self, **filters):
        columns = ["run_id", "date", "dataset", "teacher", "student", "T", "alpha", "method", "options", "epochs",
                   "teacher_accuracy", "kd_accuracy", "scratch_accuracy", "gain_points", "kd_agreement", "status",
                   "device", "source", "seconds", "created_at", "dir", "error", "sweep_id", "seed"]
        import pandas as pd  # 0.45 s to import: the CLI's runs never need it, only the app's tables

        return pd.DataFrame(self.list_runs(**filters), columns=columns)

    # ---- sweeps ------------------------------------------------------------------------------
    def save_sweep(self, sweep_id: str, spec: dict, status: str, folder: str | Path | None = None,
                   backend: Optional[str] = None, source: str = "cli", error: Optional[str] = None) -> None:
        """Add a sweep (its definition, runs/sweep.py's ``SweepSpec.to_dict``) or update its status;
        its trials are runs with this ``sweep_id``."""
        now = time.time()
        with self._write() as conn:
            conn.execute(
                """INSERT INTO sweeps (id, created_at, updated_at, status, spec, folder, backend, source, error)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (id) DO UPDATE SET updated_at = excluded.updated_at, status = excluded.status,
                       spec = excluded.spec, folder = COALESCE(excluded.folder, sweeps.folder),
                       backend = COALESCE(excluded.backend, sweeps.backend), error = excluded.error""",
                (sweep_id, now, now, status, _json(spec), str(folder) if folder else None, backend, source, error))

    def get_sweep(self, sweep_id: str) -> Optional[dict]:
        rows = self._rows("SELECT * FROM sweeps WHERE id = ?", (sweep_id,))
        return self._sweep(rows[0]) if rows else None

    def list_sweeps(self, limit: Optional[int] = None) -> list[dict]:
        """Sweeps, newest first, each with its definition decoded."""
        sql = "SELECT * FROM sweeps ORDER BY created_at DESC, id DESC" + (f" LIMIT {int(limit)}" if limit else "")
        return [self._sweep(r) for r in self._rows(sql)]

    @staticmethod
    def _sweep(row: sqlite3.Row) -> dict:
        return {**dict(row), "spec": _loads(row["spec"]) or {}}

    # ---- row helpers (inside a write transaction) ----------------------------------------------
    @staticmethod
    def _put_epochs(conn: sqlite3.Connection, run_id: str, model: str, rows: list[dict], replace: bool) -> None:
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        now = time.time()
        for row in rows:
            if row.get("epoch") is None:
                continue
            more = {k: v for k, v in row.items() if (k.startswith("train_") and k not in METRICS)
                    or k in ("terms", "stage")}  # what the fixed columns cannot hold
            conn.execute(
                f"{verb} INTO epochs (run_id, model, epoch, {', '.join(METRICS)}, terms, recorded_at) "
                f"VALUES (?, ?, ?, {', '.join('?' for _ in METRICS)}, ?, ?)",
                (run_id, model, int(row["epoch"]), *(_num(row.get(m)) for m in METRICS),
                 _json(more) if more else None, now))

    def _put_model(self, conn: sqlite3.Connection, run_id: str, role: str, entry: dict) -> None:
        slim = {k: v for k, v in entry.items() if k != "history"}
        conn.execute(
            """INSERT OR REPLACE INTO models (run_id, role, arch, source, accuracy, best_accuracy, entry)
               VALUES (?, ?, ?, ?, ?, ?, ?)""",
            (run_id, role, entry.get("model"), entry.get("source"), _num(entry.get("accuracy")),
             _num(entry.get("best_accuracy")), _json(slim)))
        self._put_epochs(conn, run_id, role, list(entry.get("history") or []), replace=False)

    @staticmethod
    def _put_artifact(conn: sqlite3.Connection, run_id: str, kind: str, path: str | Path) -> None:
        conn.execute("INSERT OR REPLACE INTO artifacts (run_id, kind, path, created_at) VALUES (?, ?, ?, ?)",
                     (run_id, kind, str(path), time.time()))

    @staticmethod
    def _insert_imported(conn: sqlite3.Connection, run_id: str, results: dict) -> None:
        cfg = results.get("config") or {}
        created = results.get("started_at") or time.time()
        conn.execute(
            """INSERT INTO runs (id, created_at, updated_at, status, dataset, teacher, student, method, temperature,
                   alpha, epochs, seed, device, config, artifacts_dir, source)
               VALUES (?, ?, ?, 'done', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'import')""",
            (run_id, created, time.time(), cfg.get("dataset"), cfg.get("teacher"), student_label(cfg),
             cfg.get("method"), _num(cfg.get("temperature")), _num(cfg.get("alpha")), cfg.get("epochs"),
             cfg.get("seed"), results.get("device") or cfg.get("device"), _json(cfg),
             (results.get("artifacts") or {}).get("dir")))
