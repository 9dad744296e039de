"""Float bases a recipe's variants start from: the official RetinaFace, or the project's own ReLU variant.

The ReLU base exists for speed on ORT CPU: INT8 LeakyReLU does not fuse into QLinearConv (38 separate
``QLinearLeakyRelu`` nodes), INT8 ReLU does. Its weights are the official ones fine-tuned by self-distillation
(:mod:`ims_runtime.toolchain.distill`) on unlabelled calibration footage; they are committed in the project's
``models/`` (small) so a fresh clone need not retrain, and retrained into the cache when missing.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ims_runtime import errors, paths
from ims_runtime.toolchain.export import export_onnx, retinaface_metadata
from ims_runtime.toolchain.recipe import BaseSpec

if TYPE_CHECKING:
    from ims_runtime.toolchain.runner import RecipeRun


def build_network(base: BaseSpec, weights: Path) -> torch.nn.Module:
    from ims_runtime.toolchain.distill import relu_variant
    from ims_runtime.toolchain.models.retinaface import RetinaFace

    model = RetinaFace()
    if base.activation == "relu":
        relu_variant(model)
    state = torch.load(str(weights), map_location="cpu", weights_only=True)
    model.load_state_dict({k.removeprefix("module."): v for k, v in state.items()}, strict=True)
    return model.eval()


def ensure_base_weights(run: RecipeRun, base_name: str) -> Path:
    base = run.recipe.bases[base_name]
    found = paths.find_file(base.weights)
    if found is not None:
        return found
    if base.distill_steps <= 0:
        raise errors.IMSError(errors.MODEL_NOT_FOUND, f"weights {base.weights} of base {base_name!r} not found",
                              "add their folder to IMS_MODEL_PATH, or set distill_steps to make them")
    return distill_base(run, base_name)


def distill_base(run: RecipeRun, base_name: str) -> Path:
    """Make a base's weights by self-distillation from the official model on the calibration clips."""
    from ims_runtime.toolchain.calibration import sample_frames
    from ims_runtime.toolchain.distill import DistillConfig, distill, relu_variant, timed
    from ims_runtime.toolchain.manifest import atomic_write_bytes, record
    from ims_runtime.toolchain.models.retinaface import load_official

    base = run.recipe.bases[base_name]
    official = ensure_base_weights(run, "official")
    teacher = load_official(str(official))
    student = copy.deepcopy(teacher)
    if base.activation == "relu":
        relu_variant(student)
    images = [image for _, _, image in sample_frames(run.calibration)]
    print(f"  distilling base {base_name!r} ({base.distill_steps} steps on {len(images)} calibration frames)")
    losses = distill(student, teacher, images, DistillConfig(steps=base.distill_steps), timed(base_name))
    out = paths.cache_dir() / base.weights
    import io

    buffer = io.BytesIO()
    torch.save(student.state_dict(), buffer)
    atomic_write_bytes(out, buffer.getvalue())
    record(paths.cache_dir() / "manifest.json", out, recipe=f"self-distillation from {official.name}",
           data=run.calibration.describe(), steps=base.distill_steps, final_loss=losses[-1])
    return out


def export_base(base: BaseSpec, weights: Path, out: Path, input_wh_px: tuple[int, int]) -> Path:
    model = build_network(base, weights)
    w, h = input_wh_px
    meta = {**retinaface_metadata(weights), "ims.activation": base.activation}
    dynamic = None
    if base.dynamic_shape:
        dynamic = {"input": {2: "height", 3: "width"}, "loc": {1: "anchors"}, "conf": {1: "anchors"},
                   "landms": {1: "anchors"}}
    else:
        meta["ims.input_size_wh"] = [w, h]
    return export_onnx(model, torch.zeros(1, 3, h, w), out, input_name="input",
                       output_names=["loc", "conf", "landms"], dynamic_axes=dynamic, metadata=meta)
