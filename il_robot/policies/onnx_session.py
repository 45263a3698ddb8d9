"""onnxruntime sessions for a device name (cpu, cuda, tensorrt), using only providers that exist here.

The policy runs next to the control loop on the same machine, so sessions use one
intra-op thread unless asked otherwise. Which provider actually runs is logged:
asking for cuda on a CPU-only install falls back to CPU with a warning, not an error.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import onnxruntime as ort

from il_robot.policies.base import PolicyLoadError

log = logging.getLogger(__name__)

PREFERENCES = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}


def providers_for(device: str) -> list[str]:
    """Providers to try for `device` ('cpu', 'cuda', 'tensorrt'; 'cuda:1' picks a GPU), best first."""
    kind = device.split(":", 1)[0].strip().lower()
    if kind not in PREFERENCES:
        raise PolicyLoadError(f"unknown device {device!r}; choose one of {', '.join(PREFERENCES)}")
    present = set(ort.get_available_providers())
    return [p for p in PREFERENCES[kind] if p in present]


def _provider_options(providers: list[str], device: str) -> list[dict]:
    index = device.split(":", 1)[1] if ":" in device else None
    gpu = {"device_id": index} if index is not None else {}
    return [gpu if p in ("CUDAExecutionProvider", "TensorrtExecutionProvider") else {} for p in providers]


def create_session(path: str | Path, device: str = "cpu", intra_op_threads: int = 1) -> ort.InferenceSession:
    """A session on the best available provider for `device`; PolicyLoadError when the file is
    missing or not a loadable ONNX model."""
    path = Path(path)
    if not path.is_file():
        raise PolicyLoadError(f"model file {path} not found")
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3          # errors only: provider fallbacks are logged here instead
    providers = providers_for(device)
    while True:
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=providers,
                                           provider_options=_provider_options(providers, device))
            break
        except Exception as err:  # onnxruntime raises several types for a bad file or a provider failure
            if len(providers) > 1 and _is_provider_failure(err):
                log.warning("%s: %s failed to start (%s); trying %s", path.name, providers[0], err, providers[1])
                providers = providers[1:]
                continue
            raise PolicyLoadError(f"cannot load {path}: {type(err).__name__}: {err}") from None
    used = session.get_providers()[0]
    wanted = PREFERENCES[device.split(":", 1)[0].strip().lower()][0]
    if used != wanted:
        log.warning("%s: device %r asked for, but %s is not available here; running on %s",
                    path.name, device, wanted, used)
    else:
        log.info("%s: running on %s", path.name, used)
    return session


def _is_provider_failure(err: Exception) -> bool:
    """A GPU provider that is listed but cannot start (missing CUDA/TensorRT libraries), as opposed
    to a broken model file, which no other provider would load either."""
    text = str(err).lower()
    return any(word in text for word in ("provider", "cuda", "tensorrt", "libnvinfer", "cudnn"))


def read_model_metadata(directory: Path, file_name: str, fmt: str, version: int, what: str) -> dict:
    """An exported model's metadata, refused with the reason when missing, unreadable, of another
    format, or newer than this runtime reads."""
    path = Path(directory) / file_name
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise PolicyLoadError(f"{path} missing: {directory} is not an exported {what} model") from None
    except (OSError, json.JSONDecodeError) as err:
        raise PolicyLoadError(f"{path} unreadable: {err}") from None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise PolicyLoadError(f"{path}: format {meta.get('format') if isinstance(meta, dict) else None!r}, "
                              f"expected {fmt!r}")
    if not isinstance(meta.get("version"), int) or meta["version"] > version:
        raise PolicyLoadError(f"{path}: version {meta.get('version')!r}; this runtime reads up to {version}")
    return meta


def shape_matches(actual, declared) -> bool:
    """Same rank, and equal sizes wherever both are fixed (a named axis such as "N" matches any size)."""
    actual, declared = list(actual), list(declared)
    return len(actual) == len(declared) and all(
        not (isinstance(a, int) and isinstance(d, int)) or a == d for a, d in zip(actual, declared))
