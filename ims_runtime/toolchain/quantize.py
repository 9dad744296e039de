"""Post-training quantisation and precision conversion with ONNX Runtime's own tools.

* :func:`quantize_static_qdq` — static QDQ INT8: uint8 activations, int8 per-channel symmetric weights, MinMax /
  Entropy / Percentile calibration, optional ``nodes_to_exclude`` (kept in float: mixed precision). The model is
  first put through ``quant_pre_process`` (shape inference + ORT's graph optimisations) as ORT recommends.
* :func:`quantize_qnn` — the QNN HTP flavour through ``get_qnn_qdq_config`` (8- or 16-bit activations, int4/int8
  weights); ``nodes_to_exclude`` there is replaced by per-tensor 16-bit overrides (the HTP has no float path
  worth falling back to).
* :func:`quantize_dynamic_int8` — dynamic quantisation (for the report: it does not pay off on CNNs).
* :func:`convert_fp16` — FP16 weights and activations (inputs/outputs kept float32 so the runtime is unchanged).
* :func:`drop_zero_weight_zero_points` — symmetric INT8 weights' all-zero zero-point tensors removed (ONNX's
  default zero point is 0: bit-identical outputs, same QLinearConv fusion, ~3.5 kB less for the detector).
* :func:`store_float_weights_fp16` — after mixed precision: the weights of the layers kept in float are *stored*
  as FP16 and cast back to float32 by ONNX Runtime once, at session load (compute stays float32).

Determinism: calibration data come in a fixed order and ORT's calibrators are deterministic, so the same recipe and
data give byte-identical quantisation parameters (``tests/toolchain/test_quantize.py`` checks this).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from ims_runtime.atomic import atomic_write_bytes
from ims_runtime.toolchain.calibration import TensorCalibrationReader
from ims_runtime.toolchain.export import set_metadata

CalibrationName = Literal["minmax", "entropy", "percentile"]
CALIBRATION_METHODS: dict[str, CalibrationMethod] = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}


def preprocess(model: Path, out: Path) -> Path:
    """ORT's recommended pre-quantisation step: symbolic shape inference and graph optimisation (BN folding etc.)."""
    quant_pre_process(str(model), str(out), skip_symbolic_shape=False)
    return out


def _input_name(model: Path) -> str:
    return onnx.load(str(model), load_external_data=False).graph.input[0].name


def _finish(out: Path, metadata: dict[str, object]) -> Path:
    proto = onnx.load(str(out))
    set_metadata(proto, metadata)
    atomic_write_bytes(out, proto.SerializeToString())
    return out


def quantize_static_qdq(model: Path, out: Path, tensors: np.ndarray, method: CalibrationName = "minmax", *,
                        per_channel: bool = True, nodes_to_exclude: list[str] | None = None,
                        nodes_16bit: list[str] | None = None, float_bias: bool = False, percentile: float = 99.999,
                        metadata: dict[str, object] | None = None) -> Path:
    """Static QDQ INT8 of ``model`` (already pre-processed) calibrated on ``tensors`` (N, ...) → ``out``.

    ``nodes_16bit``: nodes whose input and output activations are quantised to uint16 instead of uint8 while
    their weights stay int8 (W8A16) — the higher precision that costs no file size (see mixed_precision.py).
    """
    reader = TensorCalibrationReader(_input_name(model), tensors)
    extra: dict[str, object] = {"QuantizeBias": not float_bias}
    if nodes_16bit:
        extra["TensorQuantOverrides"] = {name: [{"quant_type": QuantType.QUInt16}]
                                         for name in activation_tensors(model, nodes_16bit)}
    if method == "percentile":
        extra["CalibPercentile"] = percentile
    if method in ("entropy", "percentile"):
        extra["CalibNumBins"] = 2048
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp) / out.name
        quantize_static(str(model), str(staging), reader, quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CALIBRATION_METHODS[method], nodes_to_exclude=nodes_to_exclude or [],
                        extra_options=extra)
        atomic_write_bytes(out, staging.read_bytes())
    return _finish(out, {"ims.precision": "int8", "ims.quantization": f"static QDQ u8/s8 per-channel {method}",
                         **(metadata or {})})


def activation_tensors(model: Path, node_names: list[str]) -> list[str]:
    """The activation (non-initializer) input and the output tensors of the named nodes, in graph order."""
    proto = onnx.load(str(model), load_external_data=False)
    inits = {i.name for i in proto.graph.initializer}
    wanted = set(node_names)
    names: list[str] = []
    for node in proto.graph.node:
        if node.name in wanted:
            for tensor in (node.input[0], node.output[0]):
                if tensor not in inits and tensor not in names:
                    names.append(tensor)
    return names


def quantize_qnn(model: Path, out: Path, tensors: np.ndarray, *, activation_bits: int = 8, weight_bits: int = 8,
                 tensors_16bit: list[str] | None = None, metadata: dict[str, object] | None = None) -> Path:
    """QDQ model for the QNN HTP: ``get_qnn_qdq_config`` + ``quantize`` (u8 or u16 activations, s8/s4 weights).

    ``tensors_16bit`` are activation tensors overridden to uint16 (the HTP's "higher precision" for mixed
    precision; ORT inserts the converting Q/DQ pairs).
    """
    from onnxruntime.quantization import quantize
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config

    act = {8: QuantType.QUInt8, 16: QuantType.QUInt16}[activation_bits]
    weight = {8: QuantType.QInt8, 4: QuantType.QInt4}[weight_bits]
    overrides = {name: [{"quant_type": QuantType.QUInt16}] for name in tensors_16bit or []}
    reader = TensorCalibrationReader(_input_name(model), tensors)
    config = get_qnn_qdq_config(str(model), reader, activation_type=act, weight_type=weight,
                                per_channel=True, weight_symmetric=True, init_overrides=overrides or None)
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp) / out.name
        quantize(str(model), str(staging), config)
        atomic_write_bytes(out, staging.read_bytes())
    return _finish(out, {"ims.precision": f"w{weight_bits}a{activation_bits}",
                         "ims.quantization": f"QNN QDQ w{weight_bits}a{activation_bits} per-channel minmax",
                         **(metadata or {})})


def quantize_dynamic_int8(model: Path, out: Path, metadata: dict[str, object] | None = None) -> Path:
    """Dynamic INT8 (weights int8, activations quantised at run time): ConvInteger for CNNs."""
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp) / out.name
        quantize_dynamic(str(model), str(staging), weight_type=QuantType.QUInt8)
        atomic_write_bytes(out, staging.read_bytes())
    return _finish(out, {"ims.precision": "int8-dynamic", "ims.quantization": "dynamic u8 weights",
                         **(metadata or {})})


def convert_fp16(model: Path, out: Path, metadata: dict[str, object] | None = None) -> Path:
    """FP16 weights and compute; float32 inputs/outputs (``keep_io_types``) so the runtime feeds it unchanged."""
    from onnxconverter_common import float16

    proto = float16.convert_float_to_float16(onnx.load(str(model)), keep_io_types=True)
    set_metadata(proto, {"ims.precision": "fp16", **(metadata or {})})
    atomic_write_bytes(out, proto.SerializeToString())
    return out


def drop_zero_weight_zero_points(model: onnx.ModelProto) -> int:
    """Remove the zero-point input of every DequantizeLinear whose zero point is an all-zero int8 vector.

    Returns how many bytes of initializer data went. ORT's quantiser writes an explicit zero-point vector per
    weight even for symmetric quantisation, where every entry is 0 by construction; ONNX defines an omitted zero
    point as 0 of the input's type, so the graph means exactly the same. Checked: bit-identical outputs and the
    same QLinearConv fusion on ORT CPU (docs/optimisation.md). Only per-channel *weight* zero points (int8
    vectors) are touched; activation zero points (scalars, often not 0) stay.
    """
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    dropped: set[str] = set()
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and len(node.input) > 2 and node.input[2] in inits:
            zero = onnx.numpy_helper.to_array(inits[node.input[2]])
            if zero.dtype == np.int8 and zero.size > 1 and not zero.any():
                dropped.add(node.input[2])
                del node.input[2]
    still_used = {name for node in graph.node for name in node.input}
    saved = 0
    for name in dropped - still_used:
        saved += onnx.numpy_helper.to_array(inits[name]).nbytes
        graph.initializer.remove(inits[name])
    return saved


def store_float_weights_fp16(model: onnx.ModelProto) -> int:
    """Store the float32 weights of float Conv/Gemm layers (those kept out of INT8) as FP16 + ``Cast`` to float32.

    Returns how many bytes the weights shrank. Why: mixed precision keeps the most quantisation-sensitive layers in
    float; their weights are then the largest float32 tensors left in an INT8 file. ONNX Runtime's constant folding
    (graph optimisation level "basic", on by default) turns ``Cast(fp16 initializer)`` back into a float32
    initializer when the session is created, so the layer computes in float32 exactly as before and the only change
    is FP16 rounding of the weights (relative error <= 2^-11). Biases, and every weight fed by DequantizeLinear,
    are left alone: a Cast there would sit between the Q/DQ pattern ORT fuses into QLinearConv. No ONNX tool does
    "FP16 storage, FP32 compute" for a subset of layers (onnxconverter-common's float16 converts compute too), hence
    these few lines.
    """
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    users: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    saved = 0
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        weight = inits.get(node.input[1]) if node.op_type in ("Conv", "Gemm") and len(node.input) > 1 else None
        if weight is not None and weight.data_type == onnx.TensorProto.FLOAT and users[weight.name] == 1:
            array = onnx.numpy_helper.to_array(weight)
            half = onnx.numpy_helper.from_array(array.astype(np.float16), weight.name + "_fp16")
            graph.initializer.remove(weight)
            graph.initializer.append(half)
            nodes.append(onnx.helper.make_node("Cast", [half.name], [weight.name], name=weight.name + "_to_fp32",
                                               to=onnx.TensorProto.FLOAT))
            saved += array.nbytes - array.size * 2
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return saved


def quantization_parameters(model: Path) -> dict[str, tuple[float, int]]:
    """Every QuantizeLinear's (scale, zero point) by tensor name: what determinism tests compare."""
    proto = onnx.load(str(model))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    params: dict[str, tuple[float, int]] = {}
    for node in proto.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[1] in inits:
            scale = inits[node.input[1]]
            zero = inits[node.input[2]] if len(node.input) > 2 and node.input[2] in inits else np.zeros(1)
            if scale.size == 1:
                params[node.input[0]] = (float(scale), int(zero))
    return params
