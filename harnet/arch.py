"""Torch-free facts about the harnet networks and their files: one copy of each, imported everywhere.

Nothing here imports torch, onnx or onnxruntime, so readers, signal processing and export can use
these facts without loading a framework.
"""

from __future__ import annotations

#: The sample rate every harnet network expects (Hz).
SAMPLE_RATE = 30

#: Per stage of each architecture: (channels, residual blocks, downsample factor, downsample order).
STAGES: dict[str, tuple[tuple[int, int, int, int], ...]] = {
    "harnet5": ((64, 2, 2, 2), (128, 2, 2, 2), (256, 2, 3, 1), (256, 2, 3, 1), (512, 0, 3, 1)),
    "harnet10": ((64, 2, 2, 2), (128, 2, 2, 2), (256, 2, 5, 1), (512, 2, 5, 1), (1024, 0, 3, 1)),
    "harnet30": ((64, 2, 3, 1), (128, 2, 3, 1), (256, 2, 5, 1), (512, 2, 5, 1), (1024, 0, 4, 0)),
}

#: The window (seconds) each architecture takes: window_sec * SAMPLE_RATE input samples.
WINDOW_SEC: dict[str, int] = {"harnet5": 5, "harnet10": 10, "harnet30": 30}

ARCHITECTURES = tuple(STAGES)

#: File name of each fp32 ONNX graph inside a model directory, by convolution algorithm.
ONNX_FILES: dict[str, str] = {"direct": "model.onnx", "winograd": "model.winograd.onnx"}
#: File name of the (validated) int8 graph inside a model directory.
INT8_FILE = "model.int8.onnx"

#: The registry's default activity classifier (harnet30 fine-tuned on Capture-24, Walmsley labels).
DEFAULT_MODEL = "harnet30-c24-walmsley"
