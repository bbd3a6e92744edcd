"""distill_core: knowledge distillation for image classifiers, without any UI.

The app (``app.py``) and the CLI (``python -m distill_core``) both drive this public API.
"""
from .config import PRECISIONS, RunConfig, problems, validate
from .data.datasets import DATASETS, DataRequest, ImageData, list_datasets, load_dataset
from .device import available_devices, describe_devices, resolve_device
from .precision import resolve_precision
from .errors import CheckpointError, ConfigError, DataUnavailableError, DeviceError, DistillError
from .events import Event, EventLog
from .runs.experiment import run_experiment
from .methods.losses import kd_loss
from .methods import METHODS, create_method, list_methods
from .models import MODELS, create_model, list_models

__all__ = [
    "RunConfig", "PRECISIONS", "problems", "validate", "resolve_precision", "DATASETS", "DataRequest", "ImageData", "list_datasets",
    "load_dataset", "available_devices", "describe_devices", "resolve_device", "CheckpointError",
    "ConfigError", "DataUnavailableError", "DeviceError", "DistillError", "Event", "EventLog",
    "run_experiment", "kd_loss", "METHODS", "create_method", "list_methods", "MODELS", "create_model",
    "list_models",
]
