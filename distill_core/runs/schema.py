"""The run store's tables: version 1 in schema.sql, each later version a migration here.

A store is brought to ``SCHEMA_VERSION`` when it is opened. Migrations are additive only: an
older store keeps its rows, and a newer one still opens in an older release, which ignores the
columns and tables it does not know (every INSERT names its columns).
"""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path

SCHEMA = (Path(__file__).parent / "schema.sql").read_text()  # the tables as version 1 made them
# Each later version's statements, applied in turn to a store older than it (a new file too, after SCHEMA).
MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: ("ALTER TABLE epochs ADD COLUMN val_agreement REAL", "ALTER TABLE epochs ADD COLUMN val_kl_teacher REAL"),
    3: ("ALTER TABLE runs ADD COLUMN sweep_id TEXT",  # the sweep a run is a trial of (runs/sweep.py)
        "CREATE INDEX IF NOT EXISTS runs_sweep ON runs (sweep_id)",
        """CREATE TABLE IF NOT EXISTS sweeps (
               id          TEXT PRIMARY KEY,
               created_at  REAL NOT NULL,
               updated_at  REAL NOT NULL,
               status      TEXT NOT NULL,
               spec        TEXT NOT NULL,
               folder      TEXT,
               backend     TEXT,
               source      TEXT,
               error       TEXT)"""),
    # A method's history beyond the fixed metrics: its other terms (DKD's train_tckd, ...), each
    # term's label, weight and contribution, and its stage (FitNets' hints), as JSON.
    4: ("ALTER TABLE epochs ADD COLUMN terms TEXT",),
}
SCHEMA_VERSION = max(MIGRATIONS)


def upgrade(conn: sqlite3.Connection, timeout: float) -> None:
    """Switch a store file to WAL and bring its tables to ``SCHEMA_VERSION``."""
    use_wal(conn, timeout)
    if conn.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    # Read again under the write lock: another process may have upgraded it meanwhile, and an
    # ALTER TABLE applied twice fails.
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version < 1:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
    for number in sorted(MIGRATIONS):
        if number > version:
            for statement in MIGRATIONS[number]:
                try:
                    conn.execute(statement)
                except sqlite3.OperationalError as exc:
                    # A column a development build numbered otherwise is there already: the
                    # statement's work is done.
                    if "duplicate column name" not in str(exc):
                        raise
    conn.execute(f"PRAGMA user_version = {max(version, SCHEMA_VERSION)}")
    conn.execute("COMMIT")


def use_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Switch a new store file to WAL (persistent: once per file).

    The switch takes no busy timeout: when two connections open a brand-new file at once
    (the app's first job and a page), one of them gets "database is locked" for a moment.
    It tries again until the other has switched it, within the store's timeout."""
    deadline = time.time() + timeout
    while conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        try:
            conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError:
            if time.time() > deadline:
                raise
            time.sleep(0.02)
