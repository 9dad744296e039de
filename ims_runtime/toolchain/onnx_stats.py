"""Size, parameter count and multiply-accumulates of an ONNX model (float or QDQ), read from the graph itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx


def _shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes: dict[str, list[int]] = {}
    for info in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]:
        dims = [d.dim_value for d in info.type.tensor_type.shape.dim]
        shapes[info.name] = dims
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    # a QDQ model feeds Conv weights through DequantizeLinear: the weight shape is the initializer's
    for node in model.graph.node:
        if node.op_type in ("DequantizeLinear", "Cast") and node.input[0] in shapes:
            shapes[node.output[0]] = shapes[node.input[0]]
    return shapes


def model_stats(path: Path, input_hw_px: tuple[int, int] | None = None) -> dict[str, int]:
    """``size_bytes``, ``params`` (Conv/Gemm/MatMul weights and biases) and ``macs`` (Conv only, batch 1).

    ``input_hw_px``: for an image model exported with dynamic height/width, the (H, W) to count MACs at (the
    first input's dims 2 and 3 are fixed to it before shape inference)."""
    model = onnx.load(str(path))
    if input_hw_px is not None:
        dims = model.graph.input[0].type.tensor_type.shape.dim
        if len(dims) == 4:
            for dim, value in zip(dims[2:], input_hw_px):
                if not dim.dim_value:
                    dim.dim_value = value
    shapes = _shapes(model)
    inits = {i.name: i for i in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}

    def weight_source(name: str) -> str:
        node = producer.get(name)
        # QDQ weights come through DequantizeLinear, FP16-stored float weights through Cast
        return node.input[0] if node is not None and node.op_type in ("DequantizeLinear", "Cast") else name

    params = 0
    macs = 0
    counted: set[str] = set()
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul", "ConvInteger", "MatMulNBits"):
            continue
        for name in node.input[1:3]:
            source = weight_source(name)
            if source in inits and source not in counted:
                counted.add(source)
                params += int(np.prod(inits[source].dims))
        if node.op_type in ("Conv", "ConvInteger"):
            weight = shapes.get(weight_source(node.input[1])) or shapes.get(node.input[1])
            out = shapes.get(node.output[0])
            if out and out[0] <= 0:  # a dynamic batch dimension (the fatigue model): count batch 1
                out = [1, *out[1:]]
            if weight and out and all(d > 0 for d in out):
                macs += int(np.prod(out)) * int(np.prod(weight[1:]))
    return {"size_bytes": path.stat().st_size, "params": params, "macs": macs}




def compact_names(model: onnx.ModelProto) -> onnx.ModelProto:
    """Rename every node and internal tensor to a short deterministic name (``n12``, ``t34``); graph inputs and
    outputs keep theirs, so the runtime's contract is unchanged.

    Why: a QDQ graph spells each of its ~500 nodes and ~1000 tensors with the exporter's long scoped names
    (``/body/stage1/stage1.1/stage1.1.3/Conv_output_0_QuantizeLinear_Output``); for a 0.4 M-parameter INT8 model
    those strings are ~20 % of the file. Names carry no semantics; ORT and QNN read only the graph.
    """
    graph = model.graph
    keep = {i.name for i in graph.input} | {o.name for o in graph.output}
    mapping: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in keep:
            return name
        if name not in mapping:
            mapping[name] = f"t{len(mapping)}"
        return mapping[name]

    for init in graph.initializer:
        init.name = short(init.name)
    for index, node in enumerate(graph.node):
        node.name = f"n{index}"
        node.doc_string = ""
        for i, name in enumerate(node.input):
            node.input[i] = short(name)
        for i, name in enumerate(node.output):
            node.output[i] = short(name)
    del graph.value_info[:]
    return model
