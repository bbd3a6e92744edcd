"""distill_core: knowledge distillation for image classifiers, without any UI.

The app (``app.py``, ``studio/``, ``pages/``) and the CLI (``python -m distill_core``) both drive
this public API, and only it: everything they use is exported here (a test checks the app's
imports). docs/architecture.md draws the layers.
"""
from . import paths
from .checkpoints import SAVE_A_STATE_DICT, check_fits, read_state_dict
from .config import (DISTILL_DATA, OPTIMIZERS, PRECISIONS, SCHEDULES, Problem, RunConfig, field_type,
                     problems, repeat_command, student_label, validate)
from .data.datasets import (DATASETS, FOLDER_IMAGE_SIZE, DataRequest, ImageData, classes_problem, folder_val_count,
                            image_files, list_datasets, load_dataset, split_problem)
from .data.folder_scan import IMAGE_EXTENSIONS, FolderScan, scan_folder
from .device import available_devices, describe_devices, resolve_device
from .errors import (CheckpointError, ConfigError, DataUnavailableError, DeviceError, DistillError,
                     StoreDamagedError, WriteError, first_line)
from .precision import describe_precision, resolve_precision
from .events import Event, EventLog
from .files import write_atomic
from .methods import (METHODS, Option, create_method, format_value, kd_loss, list_methods, method_formula,
                      method_legend, method_options, method_uses, options_text)
from .models import MODELS, compatible_pairs, create_model, has_features, list_models
from .models.derive import DERIVED, STUDENT_INITS, derive_problem, origin_words, resolved_init, student_model
from .runs.experiment import preload, run_experiment
from .runs.jobs import JobManager
from .runs.job_state import JobSnapshot
from .runs.rebuild import rebuild_store
from .runs.recording import run_recorded
from .runs.results import find_results, load_results, read_json
from .runs.store import RunStore
from .runs.store import default_path as run_store_path
from .runs.sweep import (MAX_TRIALS, SWEEPABLE, SweepSpec, best_cells, parse_values, spec_problems, summary_rows,
                         sweeps_dir, trial_rows)
from .runs.sweep_ray import available as ray_available
from .runs.sweep_ray import run_sweep_ray
from .runs.sweep_run import estimate_seconds, measured_speed, probe_speed, run_sweep
from .runs.teacher_cache import cached_path as cached_teacher_path
from .runs.teacher_cache import checkpoint_problem as teacher_checkpoint_problem
from .runs.teacher_cache import list_cached as list_cached_teachers
from .runs.teacher_cache import meta_for as cached_teacher_meta
from .tools.compress import compression_rows
from .tools.compress import load_rows as load_compression_rows
from .tools.export import checkpoint_missing, config_json, export_bytes, export_run, metrics_csv, onnx_report
from .tools.export import file_name as export_file_name
from .tools.lesson import (Lesson, class_similarity, dark_knowledge, demo_config, demo_teacher_ready, entropy_bits,
                           kl_shares, open_lesson, soft_gradient_norms, soft_targets)
from .training.measure import (GAIN_WORDS, NOISE_POINTS, count_flops, count_params, gain_verdict, large_batch_key,
                               state_dict_bytes)
from .training.measure import headline as comparison_headline
from .vocab import (ACTIVE, CANCELLED, DISTILLED, DONE, FAILED, FINISHED, INTERRUPTED, MEASURE, METRICS, PHASES,
                    QUEUED, ROLE_LABEL, ROLES, RUNNING, SCRATCH, STATUSES, TEACHER)

__all__ = [
    # configuring a run
    "RunConfig", "Problem", "problems", "validate", "field_type", "repeat_command", "OPTIMIZERS", "SCHEDULES",
    "DISTILL_DATA", "PRECISIONS", "resolve_precision", "describe_precision",
    # the registries
    "MODELS", "create_model", "list_models", "DATASETS", "DataRequest", "ImageData", "list_datasets",
    "load_dataset", "image_files", "folder_val_count", "split_problem", "FOLDER_IMAGE_SIZE", "METHODS",
    "scan_folder", "FolderScan", "classes_problem", "IMAGE_EXTENSIONS",
    "create_method", "list_methods", "kd_loss", "Option", "method_options", "method_formula", "method_legend",
    "method_uses", "options_text",
    "format_value", "has_features", "compatible_pairs",
    # a student derived from its teacher
    "DERIVED", "STUDENT_INITS", "derive_problem", "origin_words", "resolved_init", "student_model", "student_label",
    # devices, files and errors
    "available_devices", "describe_devices", "resolve_device", "paths", "write_atomic", "check_fits", "SAVE_A_STATE_DICT",
    "read_state_dict", "DistillError", "ConfigError", "DataUnavailableError", "CheckpointError", "DeviceError",
    "first_line", "StoreDamagedError", "WriteError",
    # running, recording and reading runs
    "run_experiment", "run_recorded", "preload", "Event", "EventLog", "JobManager", "JobSnapshot", "RunStore",
    "run_store_path", "rebuild_store",
    "load_results", "find_results", "read_json", "cached_teacher_path", "teacher_checkpoint_problem",
    "list_cached_teachers", "cached_teacher_meta",
    # sweeps
    "SweepSpec", "SWEEPABLE", "MAX_TRIALS", "spec_problems", "parse_values", "run_sweep", "run_sweep_ray",
    "ray_available", "trial_rows", "summary_rows", "best_cells", "sweeps_dir", "estimate_seconds",
    "measured_speed", "probe_speed",
    # measuring, exporting, compressing
    "count_params", "count_flops", "state_dict_bytes", "large_batch_key", "comparison_headline", "export_run",
    "export_bytes", "export_file_name", "checkpoint_missing", "metrics_csv", "config_json", "onnx_report",
    "compression_rows", "load_compression_rows", "NOISE_POINTS", "GAIN_WORDS", "gain_verdict",
    # teaching: a real teacher's soft targets (the Learn page)
    "Lesson", "open_lesson", "demo_config", "demo_teacher_ready", "soft_targets", "entropy_bits", "dark_knowledge",
    "kl_shares", "class_similarity", "soft_gradient_norms",
    # the vocabulary
    "ROLES", "TEACHER", "SCRATCH", "DISTILLED", "ROLE_LABEL", "MEASURE", "PHASES", "STATUSES", "QUEUED", "RUNNING",
    "DONE", "FAILED", "CANCELLED", "INTERRUPTED", "ACTIVE", "FINISHED", "METRICS",
]
