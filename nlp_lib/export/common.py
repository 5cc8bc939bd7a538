"""What every exporter shares: the error, the sizes asked for, tracing to a file, sessions, differences."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from nlp_lib.errors import NlpLibError

__all__ = ["ExportError", "ExportOptions", "diff", "session", "to_onnx"]


class ExportError(NlpLibError):
    """A model that cannot be exported, or an export whose outputs differ from PyTorch's."""


@dataclass(frozen=True)
class ExportOptions:
    """What :func:`~nlp_lib.export.export_onnx` was asked for, handed to the exporter of a model kind.

    Attributes:
        max_length: The longest input sequence a graph takes (sequence and seq2seq models).
        max_depth: The number of level steps a tree graph unrolls (tree models).
        opset: ONNX opset.
        check: Compare onnxruntime with PyTorch on random inputs (the manifest's ``max_abs_diff``).
    """

    max_length: int
    max_depth: int
    opset: int
    check: bool


def to_onnx(
    graph: nn.Module,
    args: tuple[Tensor, ...],
    path: Path,
    inputs: list[str],
    outputs: list[str],
    dynamic: dict[str, dict[int, str]],
    opset: int,
) -> None:
    """Trace ``graph`` on ``args`` with the TorchScript-based exporter and write it to ``path``.

    Raises:
        ExportError: an operation (often in a user's cell) that torch.onnx cannot express.
    """
    graph.eval()  # the exporter restores the wrapper's mode afterwards, and with it the model's
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notices
            torch.onnx.export(
                graph,
                args,
                str(path),
                input_names=inputs,
                output_names=outputs,
                dynamic_axes=dynamic,
                opset_version=opset,
                dynamo=False,
            )
    except Exception as e:  # an operation (often in a user's cell) that torch.onnx cannot express
        raise ExportError(f"{path}: torch.onnx cannot export this model: {type(e).__name__}: {e}") from e


def session(path: Path) -> Any:
    """An onnxruntime CPU session for the graph at ``path``, logging errors only."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: empty tree levels make ORT warn about 0-row shapes
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def diff(a: Any, b: Tensor) -> float:
    """Largest absolute difference between an onnxruntime output and PyTorch's (booleans: 0 or 1)."""
    a = torch.as_tensor(np.asarray(a))
    if a.dtype == torch.bool:
        return float((a != b).any())
    return float((a.float() - b.float()).abs().max()) if a.numel() else 0.0
