"""``python -m distill_core``: the same runs as the app, from a terminal.

    python -m distill_core run [--config runs/x/config.json] [--flag value ...] [--compress]
    python -m distill_core sweep [run flags] --temperature 1,2,4,8 --alpha 0.5,0.9 --seeds 0,1,2 [--out DIR]
    python -m distill_core runs [--status done] [--delete RUN_ID] [--rebuild]
    python -m distill_core export RUN_ID --format onnx|pt|safetensors|csv|json|all [--out PATH]
    python -m distill_core compress RUN_ID [--sparsity 0.5]
    python -m distill_core models [--dataset NAME]
    python -m distill_core datasets
    python -m distill_core methods

Every run is recorded in the run store (``runs.db`` in DISTILL_STUDIO_HOME), shared with the app.

Flags given on the command line override a ``--config`` file, so a run from the app can be
repeated exactly, or with one thing changed. User errors print one ``error: ...`` line and
exit with code 2, never a traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from . import paths, sweep_cli
from .config import DISTILL_DATA, RunConfig, derive_unused, validate
from .data.datasets import DATASETS, list_datasets
from .errors import ConfigError, DistillError, StoreDamagedError
from .events import EPOCH, PHASE, RESULT, Event
from .methods import list_methods, method_options
from .models import MODELS, create_model
from .models.derive import DERIVED, origin_words
from .precision import describe_precision
from .runs.experiment import preload
from .runs.rebuild import rebuild_store
from .runs.recording import run_recorded
from .runs.store import RunStore
from .tools.compress import CALIBRATION_IMAGES, check_settings, compression_rows, format_rows
from .tools.export import FORMATS, export_run
from .training.measure import GAIN_WORDS, NOISE_POINTS, count_params, gain_verdict, large_batch_key
from .vocab import DISTILLED, ROLES, SCRATCH, STATUSES, TEACHER

# flag -> RunConfig field, type, help. Defaults come from RunConfig, so there is one source.
RUN_FLAGS = [
    ("--dataset", "dataset", str, "dataset name (see `datasets`)"),
    ("--teacher", "teacher", str, "teacher architecture (see `models`)"),
    ("--student", "student", str, "student architecture, or `derived`: cut from the teacher, fewer blocks and "
                                  "channels"),
    ("--derive-depth", "derive_depth", float, "a derived student's share of each stage's blocks, in (0, 1]; block 0 "
                                              "and evenly spaced later ones are kept (default 0.5)"),
    ("--derive-width", "derive_width", float, "a derived student's share of each layer's channels, in (0, 1], at "
                                              "evenly spaced indices (default 0.5)"),
    ("--student-init", "student_init", str, "teacher (the slices of its trained weights, BatchNorm statistics "
                                            "included: a derived student) or random; auto: teacher when derived"),
    ("--weight-anchor", "weight_anchor", float, "MU >= 0: adds MU * ||w_s - P(w_t)||^2 to both students' loss, "
                                                "P(w_t) the teacher slice they started from (default 0)"),
    ("--method", "method", str, "distillation method"),
    ("--temperature", "temperature", float, "softmax temperature T (0.01 to 100)"),
    ("--alpha", "alpha", float, "weight of the KD term, in [0, 1]; 0 = plain training"),
    ("--epochs", "epochs", int, "student epochs (scratch and KD alike)"),
    ("--teacher-epochs", "teacher_epochs", int, "teacher epochs, when it is trained"),
    ("--batch-size", "batch_size", int, "batch size"),
    ("--lr", "lr", float, "peak learning rate"),
    ("--optimizer", "optimizer", str, "sgd (Nesterov) or adamw"),
    ("--momentum", "momentum", float, "SGD momentum"),
    ("--weight-decay", "weight_decay", float, "weight decay"),
    ("--schedule", "schedule", str, "cosine, onecycle or step"),
    ("--distill-data", "distill_data", str, "transfer-set transform: " + "; ".join(
        f"{name} ({what})" for name, what in DISTILL_DATA.items())),
    ("--seed", "seed", int, "seed for weights, data order and augmentation"),
    ("--device", "device", str, "auto, cpu, cuda or mps"),
    ("--num-threads", "num_threads", int, "CPU threads for training"),
    ("--precision", "precision", str, "fp32, bf16, or auto (bf16 where it is fast: a CPU with AMX, a GPU with "
                                      "native bf16; else fp32)"),
    ("--data-dir", "data_dir", str, "image folder, or where torchvision datasets live"),
    ("--val-fraction", "val_fraction", float, "validation share of an image folder"),
    ("--image-size", "image_size", int, "resize image-folder images to this size"),
    ("--teacher-source", "teacher_source", str, "auto (cache or train), train, or checkpoint"),
    ("--cache-dir", "cache_dir", str, "teacher cache folder"),
    ("--latency-batch", "latency_batch", int, "the larger latency batch"),
    ("--latency-repeats", "latency_repeats", int, "timed repetitions per latency batch (at least 5)"),
    ("--out", "out", str, "output folder (default: the runs folder in DISTILL_STUDIO_HOME)"),
]


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and exit 2, like our own errors
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def add_run_flags(parser: argparse.ArgumentParser, lists: Sequence[str] = (), leave_out: Sequence[str] = ()) -> None:
    """The run's flags, from RUN_FLAGS; those of the fields in ``lists`` take a comma list (as text:
    the sweep parses it with the field's type)."""
    parser.add_argument("--config", help="a config.json (or results.json) to repeat; flags override it")
    for flag, field, kind, help_ in RUN_FLAGS:
        if field in leave_out:
            continue
        listed = field in lists
        parser.add_argument(flag, dest=field, type=str if listed else kind, default=argparse.SUPPRESS,
                            help=f"{help_}; a comma list sweeps it" if listed else help_)
    parser.add_argument("--teacher-checkpoint", dest="teacher_checkpoint", default=argparse.SUPPRESS,
                        help="a state_dict of the teacher to use instead of training one")
    parser.add_argument("--no-augment", dest="augment", action="store_false", default=argparse.SUPPRESS,
                        help="no random crops or flips")
    parser.add_argument("--channels-last", dest="channels_last", action=argparse.BooleanOptionalAction,
                        default=argparse.SUPPRESS, help="channels_last memory format (default: on; faster convolutions)")
    parser.add_argument("--compile", dest="compile", action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                        help="torch.compile the models (default: off; it pays on a GPU over long runs, not in a CPU demo)")
    parser.add_argument("--no-download", dest="download", action="store_false", default=argparse.SUPPRESS,
                        help="never download datasets")
    parser.add_argument("--option", dest="options", action="append", metavar="NAME=VALUE", default=[],
                        help="an option of the method (repeatable; see `methods`), e.g. --option standardize=true")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m distill_core",
                    description="The same runs as the app, from a terminal: every run is recorded where the app lists it.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    run = sub.add_parser("run", help="train teacher, scratch student and distilled student; compare")
    add_run_flags(run)
    run.add_argument("--quiet", action="store_true", help="print only the final table")
    run.add_argument("--compress", action="store_true",
                     help="after the run, add fp16, int8 and pruned rows for the teacher and the distilled student")
    run.add_argument("--sparsity", type=float, default=0.5, help="share of weights pruned with --compress")

    runs = sub.add_parser("runs", help="list the runs in the run store (newest first), or delete one")
    runs.add_argument("--status", choices=STATUSES)
    runs.add_argument("--dataset", help="only runs on this dataset")
    runs.add_argument("--limit", type=int, default=50, help="at most this many rows (0: all)")
    runs.add_argument("--delete", metavar="RUN_ID", help="delete this run: its rows and its folder")
    runs.add_argument("--rebuild", action="store_true",
                      help="move runs.db aside and rebuild it from the run folders' results.json files "
                           "(for a damaged store)")

    export = sub.add_parser("export", help="write a run's student (onnx, pt, safetensors), metrics (csv) or config")
    export.add_argument("run_id", metavar="RUN_ID", help="a run id (see `runs`) or a run folder")
    export.add_argument("--format", required=True, choices=FORMATS + ("all",))
    export.add_argument("--out", help="file or folder (default: the run's exports/ folder)")
    export.add_argument("--model", default=DISTILLED, choices=(DISTILLED, SCRATCH, TEACHER),
                        help="which model's weights (default: the distilled student)")
    export.add_argument("--which", default="last", choices=("last", "best"), help="last or best epoch's checkpoint")
    export.add_argument("--overwrite", action="store_true", help="replace a file that --out names, if it exists")

    compress = sub.add_parser("compress", help="fp16, int8 (ONNX Runtime static) and pruned variants of a run's models")
    compress.add_argument("run_id", metavar="RUN_ID", help="a run id (see `runs`) or a run folder")
    compress.add_argument("--sparsity", type=float, default=0.5, help="share of conv/linear weights pruned")
    compress.add_argument("--models", default="teacher,student_kd",
                          help="comma-separated: teacher, student_kd, student_scratch")
    compress.add_argument("--calibration-images", type=int, default=CALIBRATION_IMAGES,
                          help="training images for int8 calibration")
    compress.add_argument("--latency-repeats", type=int, help="timed repetitions (default: the run's)")

    sweep_cli.add_parser(sub, add_run_flags)

    models = sub.add_parser("models", help="the model registry")
    models.add_argument("--dataset", default="mnist5k", help="count parameters for this dataset's shape")
    sub.add_parser("datasets", help="the dataset registry")
    sub.add_parser("methods", help="the distillation-method registry")
    return parser


def config_from_args(args: argparse.Namespace) -> RunConfig:
    base = RunConfig.load(args.config) if getattr(args, "config", None) else RunConfig()
    overrides = {field: getattr(args, field) for _, field, _, _ in RUN_FLAGS if hasattr(args, field)}
    if "out" not in overrides:
        overrides["out"] = None  # a repeated run gets a folder of its own, not the one its config came from
    for field in ("teacher_checkpoint", "augment", "channels_last", "compile", "download"):
        if hasattr(args, field):
            overrides[field] = getattr(args, field)
    if overrides.get("teacher_checkpoint") and "teacher_source" not in overrides:
        overrides["teacher_source"] = "checkpoint"
    method = overrides.get("method", base.method)
    if getattr(args, "options", None):
        overrides["extra"] = {**base.extra, **parse_options(method, args.options)}
    return validate(base.replace(**overrides))


def parse_options(method: str, pairs: Sequence[str]) -> dict:
    """``--option NAME=VALUE`` flags as ``config.extra``, each value read as the method declares it.
    A name the method does not declare is kept as text, for ``problems`` to refuse by name."""
    declared = {o.name: o for o in method_options(method)}
    out = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise DistillError(f"--option wants NAME=VALUE, got {pair!r}")
        if name in declared:
            try:
                out[name] = declared[name].parse(text)
            except ValueError as exc:
                raise DistillError(f"--option {name}={text}: {exc} ({declared[name].describe()})") from None
        else:
            out[name] = text
    return out


class ConsolePrinter:
    """Prints phases and epochs as they finish; a line per epoch keeps logs readable."""

    def __init__(self, stream=sys.stdout):
        self.stream = stream

    def __call__(self, event: Event) -> None:
        d = event.data
        if event.kind == PHASE and event.phase != "measure":
            how = {"cache": "reused from the teacher cache", "checkpoint": "loaded from checkpoint",
                   "reused": f"reused from run {d.get('from_run')}"}.get(d["source"], "")
            print(f"== {event.phase} {how}".rstrip(), file=self.stream, flush=True)
            if d.get("message"):
                print(f"  note: {d['message']}", file=self.stream, flush=True)
        elif event.kind == PHASE:
            print("== measuring size, FLOPs and latency", file=self.stream, flush=True)
        elif event.kind == EPOCH:
            terms = ", ".join(f"{t['name']} {d.get('train_' + t['name'], float('nan')):.4f}"
                              for t in d.get("terms", []))
            stage = f" [{d['stage']}]" if d.get("stage") else ""
            print(f"  epoch {d['epoch']:>3}/{d['epochs']}{stage}  loss {d['train_loss']:.4f} ({terms})  "
                  f"train {100 * d['train_accuracy']:5.1f}%  "
                  f"val {100 * d['val_accuracy']:5.1f}%  {d['images_per_s']:,.0f} img/s  {d['seconds']:.1f}s",
                  file=self.stream, flush=True)
        elif event.kind == RESULT and event.phase == "teacher" and d["entry"].get("source") != "train":
            print(f"  val {100 * d['entry']['accuracy']:.1f}%", file=self.stream, flush=True)


def format_table(results: dict) -> str:
    entries = [(role, results[role]) for role in ROLES if results.get(role)]
    big = (large_batch_key(*(e.get("latency_ms") for _, e in entries))
           or f"batch_{results.get('config', {}).get('latency_batch', 64)}")  # the run's --latency-batch
    tested = any(e.get("test_accuracy") is not None for _, e in entries)  # datasets with a test set
    rows = [("model", "arch", "val acc last", "best (epoch)", *(("test acc last",) if tested else ()), "agrees",
             "ECE", "params", "MB", "MFLOPs", "ms b=1", f"ms b={big.split('_')[1]}")]
    for role, e in entries:
        lat = e.get("latency_ms", {})
        best_epoch = e.get("best_epoch")
        test = e.get("test_accuracy")
        rows.append((
            role, e["model"], f"{100 * e['accuracy']:.2f}%",
            f"{100 * e['best_accuracy']:.2f}% ({best_epoch if best_epoch is not None else '-'})",
            *((f"{100 * test:.2f}%" if test is not None else "-",) if tested else ()),
            f"{100 * e['val_agreement']:.1f}%" if e.get("val_agreement") is not None else "-",
            f"{e['ece']:.3f}" if e.get("ece") is not None else "-",
            f"{e['params']:,}" if "params" in e else "-",
            f"{e['size_bytes'] / 1e6:.2f}" if "size_bytes" in e else "-",
            f"{e['flops'] / 1e6:.1f}" if "flops" in e else "-",
            f"{lat['batch_1']['median']:.2f}" if "batch_1" in lat else "-",
            f"{lat[big]['median']:.1f}" if big in lat else "-",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    comparison = results.get("comparison") or {}
    notes = ["accuracy: validation split, top-1; 'last' is the final epoch"
             + ("; test: the dataset's test set, evaluated once at the last epoch" if tested else "") + ". FLOPs: forward, batch 1 "
             "(1 multiply-add = 2 FLOPs). Agrees: the student's top-1 answer is the teacher's, share of val images, last "
             "epoch. ECE: expected calibration error, 15 equal-width bins. Latency: median over timed runs after warm-up on "
             f"{results.get('teacher', {}).get('latency_ms', {}).get('device', results.get('device', '?'))}."]
    if results.get("precision"):
        notes.append(describe_precision(results["precision"]) + ".")
    for key, label in (("scratch_vs_teacher", "scratch vs teacher"), ("kd_vs_teacher", "KD vs teacher")):
        if key in comparison:
            notes.append(f"{label}: {comparison[key]['summary']}")
    if (origin := results.get("student_origin") or {}).get("derived_from") or origin.get("weight_anchor"):
        notes.append(f"students: {origin_words(origin)}; scratch and distilled started from the same weights")
    if "kd_gain_points" in comparison:
        verdict = GAIN_WORDS[gain_verdict(comparison["kd_gain_points"])]
        notes.append(f"KD gain over scratch: {comparison['kd_gain_points']:+.2f} points (last epoch, val): {verdict}"
                     + (f" (within {NOISE_POINTS:g} point either way)" if verdict == GAIN_WORDS["unclear"] else ""))
    for key in ("chance_teacher", "weak_teacher"):
        if comparison.get(key):
            notes.append(comparison[key])
    if note := (results.get("student_scratch") or {}).get("not_reused"):
        notes.append(f"scratch student {note}.")
    return "\n".join(lines + [""] + notes)


PHASE_LABELS = {"setup": "loading", "teacher": "teacher", "student_scratch": "scratch", "student_kd": "distilled",
                "measure": "measuring"}


def cmd_run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    # A derive flag given at its default value is still a request, which another student would ignore
    # (validate sees only values, and refuses those that differ from the default).
    if config.student != DERIVED and (unused := [f for f in ("derive_depth", "derive_width") if hasattr(args, f)]):
        raise ConfigError("; ".join(str(derive_unused(f, config.student)) for f in unused))
    if reason := paths.home_unwritable():  # the run store and the teacher cache live there, whatever --out says
        raise DistillError(f"the Distill Studio home {paths.home()} cannot be written: {reason} (set "
                           "DISTILL_STUDIO_HOME to a folder you can write)")
    if args.compress:  # a bad --sparsity is refused now, not after the whole run has trained
        check_settings(args.sparsity, CALIBRATION_IMAGES)
    started = time.perf_counter()
    preload()
    results = run_recorded(config, on_event=None if args.quiet else ConsolePrinter(), source="cli")
    print()
    print(format_table(results))
    phases = results.get("phase_seconds") or {}
    took = ", ".join(f"{label} {phases[key]:.1f}s" for key, label in PHASE_LABELS.items() if key in phases)
    print(f"\n{results['status']} in {time.perf_counter() - started:.1f}s" + (f" ({took})" if took else "")
          + f"; written to {results['artifacts']['dir']} (run {results['run_id']})")
    if args.compress and results["status"] == "done":
        print("\n== compressed variants")
        print(format_rows(compression_rows(results["run_id"], sparsity=args.sparsity)))
    return 0 if results["status"] == "done" else 1


def cmd_runs(args: argparse.Namespace) -> int:
    if args.rebuild:
        print(rebuild_store().summary())
        return 0
    if args.limit < 0:
        raise DistillError(f"--limit must be 0 (all) or more, got {args.limit}")
    if args.delete:
        store = RunStore()
        if not store.delete_run(args.delete):
            raise DistillError(f"no run {args.delete!r} in the run store ({store.path})")
        print(f"deleted run {args.delete} (its rows and its folder)")
        return 0
    try:
        store = RunStore()
        store.scan()  # run folders written before the store existed
    except StoreDamagedError:
        raise
    except DistillError as exc:  # on a disk that cannot be written: listed as it is, if it can be read
        try:
            store = RunStore(read_only=True)
        except DistillError:
            raise exc from None
        print(f"note: {exc}; listing it read-only", file=sys.stderr)
    rows = store.list_runs(status=args.status, dataset=args.dataset, limit=args.limit or None)
    print(f"{len(rows)} run(s) in {store.path}")
    if not rows:
        return 0

    def pct(x):
        return f"{100 * x:.1f}%" if x is not None else "-"

    table = [("run id", "date", "dataset", "teacher", "student", "T", "alpha", "method", "KD acc", "scratch acc",
              "gain", "status")]
    for r in rows:
        table.append((r["run_id"], r["date"], str(r["dataset"]), str(r["teacher"]), str(r["student"]),
                      f"{r['T']:g}" if r["T"] is not None else "-", f"{r['alpha']:g}" if r["alpha"] is not None else "-",
                      str(r["method"]), pct(r["kd_accuracy"]), pct(r["scratch_accuracy"]),
                      f"{r['gain_points']:+.1f}" if r["gain_points"] is not None else "-", r["status"]))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    formats = FORMATS if args.format == "all" else (args.format,)
    if len(formats) > 1 and args.out and Path(args.out).suffix:
        raise DistillError("--format all writes several files: give --out a folder, not a file name")
    for fmt in formats:
        # Files in the run's own exports/ folder are replaced; a file elsewhere only when asked.
        report = export_run(args.run_id, fmt, args.out, role=args.model, which=args.which,
                            overwrite=args.overwrite or not args.out)
        line = f"{fmt:<12} {report['path']}  ({report['size_bytes']:,} bytes)"
        parity = report.get("parity")
        if parity:
            line += (f"\n{'':<12} onnxruntime check on {parity['images']} validation images: top-1 agreement "
                     f"{100 * parity['top1_agreement']:.2f}%, accuracy {100 * parity['accuracy_onnx']:.2f}% "
                     f"(PyTorch {100 * parity['accuracy_torch']:.2f}%), max logit difference "
                     f"{parity['max_abs_logit_diff']:.1e} (tolerance {parity['tolerance']:.0e})")
        print(line)
    return 0


def cmd_compress(args: argparse.Namespace) -> int:
    roles = tuple(r.strip() for r in args.models.split(",") if r.strip())
    if not roles:
        raise DistillError("--models names no model; give some of teacher, student_scratch, student_kd")
    rows = compression_rows(args.run_id, roles=roles, sparsity=args.sparsity,
                            calibration_images=args.calibration_images, repeats=args.latency_repeats,
                            on_progress=lambda m: print(f"  {m}", file=sys.stderr, flush=True))
    print(format_rows(rows))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    shape = DATASETS.meta(args.dataset)["shape"]
    c, s = (3, 32) if not isinstance(shape[0], int) else (shape[0], shape[-1])
    classes = DATASETS.meta(args.dataset)["classes"]
    classes = classes if isinstance(classes, int) else 10
    print(f"{'name':<20} {'family':<22} {'role':<8} params ({args.dataset}: {c}x{s}x{s}, {classes} classes)")
    for name in MODELS.names():
        meta = MODELS.meta(name)
        params = count_params(create_model(name, c, classes, s))
        print(f"{name:<20} {meta.get('family', ''):<22} {meta.get('role', ''):<8} {params:>12,}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    found = list_datasets()
    wide = max(len("size"), *(len(d["size"]) for d in found))  # "55,000 train / 5,000 val / 10,000 test"
    print(f"{'name':<14} {'shape':<12} {'classes':<8} {'availability':<12} {'size':<{wide}} source")
    for d in found:
        shape = "x".join(str(v) for v in d["shape"])
        print(f"{d['name']:<14} {shape:<12} {str(d['classes']):<8} {'offline' if d['offline'] else 'download':<12} "
              f"{d['size']:<{wide}} {d['source']}")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    for m in list_methods():
        print(f"{m['name']:<8} {m.get('paper', '')}")
        print(f"{'':<8} transfers {m.get('summary', '')}")
        knobs = " and ".join({"temperature": "T", "alpha": "alpha"}[k] for k in m["uses"]) or "neither T nor alpha"
        knobs += f" ({m['uses_note']})" if m.get("uses_note") else ""
        print(f"{'':<8} reads {knobs}" + ("; needs convolutional teacher and student (feature maps)"
                                          if m["features"] else ""))
        for option in m["options"]:
            print(f"{'':<10} --option {option.name}=...  {option.describe()}: {option.help}")
    print("\nSet an option with --option NAME=VALUE on `run` (repeatable).")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"run": cmd_run, "runs": cmd_runs, "export": cmd_export, "compress": cmd_compress, "models": cmd_models,
               "datasets": cmd_datasets, "methods": cmd_methods,
               "sweep": lambda a: sweep_cli.cmd_sweep(a, config_from_args)}[args.command]
    try:
        return handler(args)
    except BrokenPipeError:  # `... | head` stopped reading: not an error of ours
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # so the interpreter's final flush does not complain
        return 0
    except DistillError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a place that cannot be written or read, past the checks above
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


