-- The run store's tables as version 1 made them, applied by RunStore to a new file. Later changes
-- are MIGRATIONS in store.py, applied after this. No semicolon in a comment: RunStore splits the
-- statements on them.
CREATE TABLE IF NOT EXISTS runs (
    id            TEXT PRIMARY KEY,
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL,
    started_at    REAL,
    finished_at   REAL,
    status        TEXT NOT NULL,
    message       TEXT,
    error         TEXT,
    dataset       TEXT,
    teacher       TEXT,
    student       TEXT,
    method        TEXT,
    temperature   REAL,
    alpha         REAL,
    epochs        INTEGER,
    seed          INTEGER,
    device        TEXT,
    config        TEXT NOT NULL,      -- RunConfig as JSON
    results       TEXT,               -- results.json as JSON, once the run has returned
    artifacts_dir TEXT,
    source        TEXT,               -- cli, app, import
    pid           INTEGER,
    host          TEXT,
    proc_token    TEXT                -- identifies the process beyond its pid (start time)
);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created_at);
CREATE TABLE IF NOT EXISTS epochs (
    run_id         TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    model          TEXT NOT NULL,     -- teacher, student_scratch, student_kd
    epoch          INTEGER NOT NULL,
    train_loss     REAL, train_ce REAL, train_kd REAL, train_accuracy REAL,
    val_loss       REAL, val_accuracy REAL, lr REAL, images_per_s REAL, seconds REAL,
    recorded_at    REAL,
    PRIMARY KEY (run_id, model, epoch)
);
CREATE TABLE IF NOT EXISTS models (
    run_id         TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    role           TEXT NOT NULL,
    arch           TEXT,
    source         TEXT,
    accuracy       REAL,
    best_accuracy  REAL,
    entry          TEXT NOT NULL,     -- the model entry of results.json, without its history
    PRIMARY KEY (run_id, role)
);
CREATE TABLE IF NOT EXISTS artifacts (
    run_id         TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    kind           TEXT NOT NULL,     -- student_kd_best, teacher, onnx, compression, ...
    path           TEXT NOT NULL,
    created_at     REAL,
    PRIMARY KEY (run_id, kind)
);
