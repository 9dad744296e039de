"""Shared parts of eager ``torch.ao.quantization`` QAT (docs/platform-notes.md: the path that exports to a QDQ ONNX
running on ORT CPU and fully on QNN HTP). Used by the face-state (:mod:`.face_state.compress`) and detector
(:mod:`.detector_qat`) QAT."""

from __future__ import annotations

import torch


def qat_qconfig() -> torch.ao.quantization.QConfig:
    """quint8 per-tensor activations (moving-average min/max), qint8 per-channel symmetric weights."""
    from torch.ao.quantization import (
        FakeQuantize,
        MovingAverageMinMaxObserver,
        MovingAveragePerChannelMinMaxObserver,
    )

    return torch.ao.quantization.QConfig(
        activation=FakeQuantize.with_args(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255,
                                          dtype=torch.quint8, qscheme=torch.per_tensor_affine),
        weight=FakeQuantize.with_args(observer=MovingAveragePerChannelMinMaxObserver, quant_min=-128,
                                      quant_max=127, dtype=torch.qint8, qscheme=torch.per_channel_symmetric,
                                      ch_axis=0))


def select_quantized_engine() -> str:
    """Pick torch's x86 quantized engine (fbgemm on older builds) for ``convert`` and set it; returns its name."""
    engines = torch.backends.quantized.supported_engines
    torch.backends.quantized.engine = "x86" if "x86" in engines else "fbgemm"
    return torch.backends.quantized.engine
