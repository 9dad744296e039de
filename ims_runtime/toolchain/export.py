"""PyTorch → ONNX export with graph simplification and the model's facts written into the file."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import onnx
import torch

from ims_runtime.atomic import atomic_write_bytes
from ims_runtime.paths import sha256_file

OPSET = 17


def export_onnx(model: torch.nn.Module, sample: torch.Tensor, out_path: Path, *, input_name: str,
                output_names: list[str], dynamic_axes: dict[str, dict[int, str]] | None,
                metadata: dict[str, Any], simplify: bool = True) -> Path:
    """Export ``model`` (eval mode) to ``out_path`` atomically.

    BatchNorm is folded into the preceding convolutions by the exporter (eval mode), then onnxslim removes
    redundant nodes and folds constants. ``metadata`` goes into ``metadata_props`` (string values) so the artefact
    carries its own preprocessing facts. Shapes are checked with ONNX's shape inference.
    """
    model = model.eval()
    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(model, (sample,), buffer, input_names=[input_name], output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=OPSET, do_constant_folding=True, dynamo=False)
    proto = onnx.load_from_string(buffer.getvalue())
    if simplify:
        import onnxslim

        proto = onnxslim.slim(proto)
    proto = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    onnx.checker.check_model(proto)
    set_metadata(proto, metadata)
    atomic_write_bytes(out_path, proto.SerializeToString())
    return out_path


def set_metadata(proto: onnx.ModelProto, metadata: dict[str, Any]) -> None:
    existing = {p.key: p for p in proto.metadata_props}
    for key, value in metadata.items():
        text = value if isinstance(value, str) else repr(value) if not isinstance(value, (list, tuple)) \
            else ",".join(str(v) for v in value)
        if key in existing:
            existing[key].value = text
        else:
            proto.metadata_props.add(key=key, value=text)


def retinaface_metadata(weights: Path) -> dict[str, Any]:
    """The facts the runtime's detector stage checks (see ims_runtime/stages/face_detector.py)."""
    return {
        "ims.model_family": "retinaface",
        "ims.input_color": "bgr",
        "ims.input_mean": [104, 117, 123],
        "ims.input_scale": "1",
        "ims.input_layout": "NCHW",
        "ims.min_sizes": "16,32;64,128;256,512",
        "ims.steps": [8, 16, 32],
        "ims.variance": [0.1, 0.2],
        "ims.outputs": "loc: box offsets (1,N,4); conf: softmax [background, face] (1,N,2); "
                       "landms: 5 landmark offsets (1,N,10)",
        "ims.precision": "fp32",
        "ims.source_weights": weights.name,
        "ims.source_sha256": sha256_file(weights),
        "ims.licence": "MIT (biubug6/Pytorch_Retinaface weights)",
    }


#: the detector stage's output contract (ims_runtime/stages/face_detector.py): box, class and landmark offsets
RETINAFACE_OUTPUTS = ["loc", "conf", "landms"]


def export_retinaface_module(model: torch.nn.Module, out_path: Path, input_size_wh: tuple[int, int] | None,
                             metadata: dict[str, Any]) -> Path:
    """Any network with RetinaFace's interface (official, ReLU, pruned, converted QAT) → ONNX with the detector
    stage's contract: input ``input`` (1, 3, H, W), outputs ``loc``/``conf``/``landms`` (1, anchors, ...).

    ``input_size_wh=None`` gives dynamic height and width (the ORT CPU default: tracking re-detects in crops of
    another size); a fixed size suits QNN and TensorRT, which want static shapes, and is recorded in the metadata.
    """
    w, h = input_size_wh or (640, 384)
    dynamic = None
    meta = dict(metadata)
    if input_size_wh:
        meta["ims.input_size_wh"] = list(input_size_wh)
    else:
        dynamic = {"input": {2: "height", 3: "width"}, **{name: {1: "anchors"} for name in RETINAFACE_OUTPUTS}}
    return export_onnx(model, torch.zeros(1, 3, h, w), out_path, input_name="input",
                       output_names=RETINAFACE_OUTPUTS, dynamic_axes=dynamic, metadata=meta)


def export_retinaface(weights: Path, out_path: Path, input_size_wh: tuple[int, int] | None = None) -> Path:
    """Export RetinaFace-MobileNet0.25 from the official weights (sizes: :func:`export_retinaface_module`)."""
    from ims_runtime.toolchain.models.retinaface import load_official

    return export_retinaface_module(load_official(str(weights)), out_path, input_size_wh,
                                    retinaface_metadata(weights))
