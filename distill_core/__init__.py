"""distill_core: knowledge distillation for image classifiers, without any UI.

The app (``app.py``, ``studio/``, ``pages/``) and the CLI (``python -m distill_core``) both drive
this public API, and only it: everything they use is exported here (a test checks the app's
imports). docs/architecture.md draws the layers.
"""
from . import paths
from .checkpoints import check_fits, read_state_dict
from .config import (DISTILL_DATA, OPTIMIZERS, PRECISIONS, SCHEDULES, Problem, RunConfig, field_type, problems,
                     repeat_command, validate)
from .data.datasets import (DATASETS, FOLDER_IMAGE_SIZE, DataRequest, ImageData, folder_val_count, image_files,
                            list_datasets, load_dataset, split_problem)
from .device import available_devices, describe_devices, resolve_device
from .precision import resolve_precision
from .errors import CheckpointError, ConfigError, DataUnavailableError, DeviceError, DistillError, first_line
from .events import Event, EventLog
from .files import write_atomic
from .methods import METHODS, create_method, kd_loss, list_methods
from .models import MODELS, create_model, list_models
from .runs.experiment import preload, run_experiment
from .runs.jobs import JobManager
from .runs.job_state import JobSnapshot
from .runs.recording import run_recorded
from .runs.results import find_results, load_results, read_json
from .runs.store import RunStore
from .runs.teacher_cache import cached_path as cached_teacher_path
from .runs.teacher_cache import checkpoint_problem as teacher_checkpoint_problem
from .runs.teacher_cache import list_cached as list_cached_teachers
from .runs.teacher_cache import meta_for as cached_teacher_meta
from .tools.compress import compression_rows
from .tools.compress import load_rows as load_compression_rows
from .tools.export import config_json, export_bytes, export_run, metrics_csv, onnx_report
from .tools.export import file_name as export_file_name
from .training.measure import count_flops, count_params, large_batch_key, state_dict_bytes
from .training.measure import headline as comparison_headline
from .vocab import (ACTIVE, CANCELLED, DISTILLED, DONE, FAILED, FINISHED, INTERRUPTED, MEASURE, METRICS, PHASES,
                    QUEUED, ROLE_LABEL, ROLES, RUNNING, SCRATCH, STATUSES, TEACHER)

__all__ = [
    # configuring a run
    "RunConfig", "Problem", "problems", "validate", "field_type", "repeat_command", "OPTIMIZERS", "SCHEDULES",
    "DISTILL_DATA", "PRECISIONS", "resolve_precision",
    # the registries
    "MODELS", "create_model", "list_models", "DATASETS", "DataRequest", "ImageData", "list_datasets",
    "load_dataset", "image_files", "folder_val_count", "split_problem", "FOLDER_IMAGE_SIZE", "METHODS",
    "create_method", "list_methods", "kd_loss",
    # devices, files and errors
    "available_devices", "describe_devices", "resolve_device", "paths", "write_atomic", "check_fits",
    "read_state_dict", "DistillError", "ConfigError", "DataUnavailableError", "CheckpointError", "DeviceError",
    "first_line",
    # running, recording and reading runs
    "run_experiment", "run_recorded", "preload", "Event", "EventLog", "JobManager", "JobSnapshot", "RunStore",
    "load_results", "find_results", "read_json", "cached_teacher_path", "teacher_checkpoint_problem",
    "list_cached_teachers", "cached_teacher_meta",
    # measuring, exporting, compressing
    "count_params", "count_flops", "state_dict_bytes", "large_batch_key", "comparison_headline", "export_run",
    "export_bytes", "export_file_name", "metrics_csv", "config_json", "onnx_report", "compression_rows",
    "load_compression_rows",
    # the vocabulary
    "ROLES", "TEACHER", "SCRATCH", "DISTILLED", "ROLE_LABEL", "MEASURE", "PHASES", "STATUSES", "QUEUED", "RUNNING",
    "DONE", "FAILED", "CANCELLED", "INTERRUPTED", "ACTIVE", "FINISHED", "METRICS",
]
