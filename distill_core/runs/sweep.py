"""A sweep: one recipe over a grid of settings, every cell over several seeds.

``SweepSpec`` is a sweep's whole definition: the base ``RunConfig`` (the recipe), the grid (each
swept field with its values; the grid is their product) and the seeds, which repeat every cell.
Each (cell, seed) is a trial, and each trial is an ordinary run (``run_experiment``), recorded in
the run store with the sweep's id, so the Runs and Compare pages and export work on it.

The definition is saved as ``sweep.json`` in the sweep's folder and in the run store's sweeps
table; the results are read back from the run store into two tables, ``sweep.csv`` (one row per
finished trial) and ``summary.csv`` (one row per cell: mean and std over its seeds). Running a
sweep (the local loop, the order of its trials) is ``sweep_run``; on Ray, ``sweep_ray``.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .. import paths
from ..config import MAX_SEED, Problem, RunConfig, field_type, problems
from ..errors import ConfigError
from ..files import write_atomic
from ..vocab import DONE
from .experiment import new_run_id
from .store import RunStore

# The run fields a sweep may vary, in the order the CLI and the app offer them. A field belongs
# here when changing it makes another experiment of the same pair; the data, the teacher and where
# things run do not. Adding one: its name here (the CLI's --FIELD takes a comma list from then on,
# and the Sweep page offers it), nothing else.
SWEEPABLE = ("temperature", "alpha", "method", "student", "epochs", "lr", "distill_data", "derive_depth", "derive_width",
             "student_init", "weight_anchor")
MAX_TRIALS = 500  # more needs --yes: at a minute a trial, a larger sweep runs for over eight hours
SPEC_FILE, TRIALS_FILE, SUMMARY_FILE = "sweep.json", "sweep.csv", "summary.csv"
RESULT_COLUMNS = ("seed", "kd_accuracy", "scratch_accuracy", "gain", "teacher_accuracy", "seconds", "run_id")
SUMMARY_COLUMNS = ("n", "gain_mean", "gain_std", "kd_accuracy_mean", "kd_accuracy_std")


def sweeps_dir() -> Path:
    """Where a sweep's folder goes when none is given: ``sweeps/`` in the studio's home."""
    return paths.home() / "sweeps"


@dataclass(frozen=True)
class Trial:
    index: int  # its place in the grid's order: cells in product order, seeds within a cell
    cell: dict[str, Any]
    seed: int
    config: RunConfig

    @property
    def key(self) -> str:
        return trial_key(self.cell, self.seed)


def trial_key(cell: dict[str, Any], seed: int) -> str:
    """Identifies a trial within its sweep, from its swept values and seed (what resuming matches)."""
    return json.dumps([sorted((k, _plain(v)) for k, v in cell.items()), int(seed)])


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


@dataclass
class SweepSpec:
    base: RunConfig
    grid: dict[str, list] = field(default_factory=dict)  # swept field -> its values; the order is the axes'
    seeds: list[int] = field(default_factory=lambda: [0])
    sweep_id: str = field(default_factory=new_run_id)

    @property
    def fields(self) -> list[str]:
        return list(self.grid)

    def cells(self) -> list[dict[str, Any]]:
        return [dict(zip(self.grid, values)) for values in itertools.product(*self.grid.values())]

    def trials(self) -> list[Trial]:
        found = []
        for cell in self.cells():
            for seed in self.seeds:
                config = self.base.replace(**cell, seed=seed, out=None)  # a trial's run folder is its own
                found.append(Trial(len(found), cell, seed, config))
        return found

    def size(self) -> int:
        return math.prod(len(v) for v in self.grid.values()) * len(self.seeds)

    def to_dict(self) -> dict:
        return {"sweep_id": self.sweep_id, "base": self.base.to_dict(), "grid": self.grid, "seeds": self.seeds}

    @classmethod
    def from_dict(cls, data: dict) -> "SweepSpec":
        try:
            return cls(RunConfig.from_dict(dict(data["base"])), {k: list(v) for k, v in dict(data["grid"]).items()},
                       [int(s) for s in data["seeds"]], str(data["sweep_id"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"not a sweep definition ({exc})") from None

    def save(self, folder: Path) -> None:
        write_atomic(folder / SPEC_FILE, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> "SweepSpec":
        path = Path(folder).expanduser() / SPEC_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path.parent} holds no sweep ({SPEC_FILE} is missing)") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from None
        return cls.from_dict(data)


def parse_values(name: str, text: str) -> list:
    """A comma list as the field's type: "1,2,4" for temperature is [1.0, 2.0, 4.0]. Raises
    ``ValueError`` naming the item that is not of the field's type."""
    base, _ = field_type(name) if name != "seed" else (int, False)
    values = []
    if not str(text).strip():
        return values
    for item in (part.strip() for part in str(text).split(",")):
        if not item:
            raise ValueError(f"{text!r} has an empty item")
        if base is int:
            number = float(item)
            if not number.is_integer():
                raise ValueError(f"{item} is not a whole number")
            values.append(int(number))
        elif base is float:
            values.append(float(item))
        else:
            values.append(item)
    return values


def spec_problems(spec: SweepSpec, max_trials: Optional[int] = MAX_TRIALS) -> list[Problem]:
    """Every reason this sweep cannot run, each with the field it concerns: a field that cannot be
    swept, an empty list, a value the run would refuse, a seed out of range, too many trials."""
    found = [p for p in problems(spec.base) if p.field not in spec.grid and p.field != "seed"]
    for name, values in spec.grid.items():
        if name not in SWEEPABLE:
            found.append(Problem(name, f"{name} cannot be swept; these can: {', '.join(SWEEPABLE)}"))
            continue
        if not values:
            found.append(Problem(name, f"{name}: the list of values is empty"))
        for value in values:
            wrong = [p for p in problems(spec.base.replace(**{name: value})) if p.field == name]
            found.extend(Problem(name, f"{name} {value!r} in the list: {p.message}") for p in wrong)
        found.extend(Problem(name, f"{name} lists {v!r} more than once") for v in _repeated(values))
    if not spec.seeds:
        found.append(Problem("seed", "seeds: the list of seeds is empty"))
    for seed in spec.seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            found.append(Problem("seed", f"seed {seed!r} in the list: seeds are whole numbers from 0 to {MAX_SEED:,}"))
    found.extend(Problem("seed", f"seeds list {s!r} more than once") for s in _repeated(spec.seeds))
    if max_trials is not None and spec.size() > max_trials:
        found.append(Problem(None, f"this sweep has {spec.size():,} trials, more than {max_trials}: at a minute a "
                                   "trial that is many hours; give --yes to run it anyway"))
    return found


def _repeated(values: list) -> list:
    seen, twice = [], []
    for v in values:
        (twice if v in seen and v not in twice else seen).append(v)
    return twice


# ---- results -----------------------------------------------------------------------------------
def trial_rows(spec: SweepSpec, store: RunStore) -> list[dict]:
    """One row per finished trial, in the grid's order: its swept values, seed, accuracies
    (validation, last epoch, 0..1), gain (KD minus scratch, same unit), seconds and run id."""
    by_key = {t.key: t for t in spec.trials()}
    found: dict[str, dict] = {}
    for run in reversed(store.list_runs(sweep_id=spec.sweep_id, status=DONE)):  # oldest first: the latest wins
        config = run["config"]
        key = trial_key({name: config.get(name) for name in spec.grid}, config.get("seed", 0))
        if key in by_key and run["kd_accuracy"] is not None and run["scratch_accuracy"] is not None:
            found[key] = run
    rows = []
    for key, trial in by_key.items():
        run = found.get(key)
        if run is None:
            continue
        rows.append({**trial.cell, "seed": trial.seed, "kd_accuracy": run["kd_accuracy"],
                     "scratch_accuracy": run["scratch_accuracy"],
                     "gain": run["kd_accuracy"] - run["scratch_accuracy"],
                     "teacher_accuracy": run["teacher_accuracy"], "seconds": run["seconds"],
                     "run_id": run["run_id"], "index": trial.index})
    return rows


def summary_rows(spec: SweepSpec, rows: list[dict]) -> list[dict]:
    """One row per cell that has a finished trial: n, and the mean and sample std over its seeds
    of the gain and the KD accuracy (std None with one seed)."""
    out = []
    for cell in spec.cells():
        mine = [r for r in rows if all(r[k] == v for k, v in cell.items())]
        if not mine:
            continue
        gains, kds = [r["gain"] for r in mine], [r["kd_accuracy"] for r in mine]
        out.append({**cell, "n": len(mine), "gain_mean": statistics.fmean(gains), "gain_std": _std(gains),
                    "kd_accuracy_mean": statistics.fmean(kds), "kd_accuracy_std": _std(kds),
                    "run_ids": [r["run_id"] for r in mine]})
    return out


def _std(values: list[float]) -> Optional[float]:
    return statistics.stdev(values) if len(values) > 1 else None


def csv_text(columns: list[str], rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in columns})
    return buffer.getvalue()


def write_tables(spec: SweepSpec, folder: Path, store: RunStore) -> tuple[list[dict], list[dict]]:
    """Write sweep.csv and summary.csv from what the run store holds now; return their rows."""
    rows = trial_rows(spec, store)
    summary = summary_rows(spec, rows)
    write_atomic(folder / TRIALS_FILE, csv_text([*spec.fields, *RESULT_COLUMNS], rows))
    write_atomic(folder / SUMMARY_FILE, csv_text([*spec.fields, *SUMMARY_COLUMNS], summary))
    return rows, summary


def best_cells(summary: list[dict]) -> Optional[dict]:
    """The cell of highest mean gain, the runner-up, and whether the best is clear of it: their
    means further apart than the larger of their stds (with one seed, no std: never clear)."""
    ranked = sorted(summary, key=lambda r: r["gain_mean"], reverse=True)
    if not ranked:
        return None
    best = ranked[0]
    second = ranked[1] if len(ranked) > 1 else None
    clear = None
    if second is not None:
        spread = [s for s in (best["gain_std"], second["gain_std"]) if s is not None]
        clear = bool(spread) and len(spread) == 2 and best["gain_mean"] - second["gain_mean"] > max(spread)
    return {"best": best, "second": second, "clear": clear}
