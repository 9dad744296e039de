"""Float bases a recipe's variants start from: the official RetinaFace, the project's own ReLU variant, or a
channel-pruned one (:mod:`ims_runtime.toolchain.detector_pruning`).

The ReLU base exists for speed on ORT CPU: INT8 LeakyReLU does not fuse into QLinearConv (38 separate
``QLinearLeakyRelu`` nodes), INT8 ReLU does. Its weights are the official ones fine-tuned by self-distillation
(:mod:`ims_runtime.toolchain.distill`) on unlabelled calibration footage; they are committed in the project's
``models/`` (small) so a fresh clone need not retrain, and retrained into the cache when missing.

A pruned base (``prune_ratio`` > 0) is always made in the cache — pruned, then distilled for ``distill_steps`` —
and stamped by its spec, the official weights and the calibration data, so changing the ratio or the steps
rebuilds it (and, through its sha256, every variant made from it).
"""

from __future__ import annotations

import copy
import io
import time
from pathlib import Path

import torch

from ims_runtime import errors, paths
from ims_runtime.atomic import atomic_write_bytes
from ims_runtime.toolchain.calibration import fixed_rate_frames
from ims_runtime.toolchain.detector_pruning import load_pruned, params_and_macs, prune_retinaface
from ims_runtime.toolchain.distill import DistillConfig, distill, relu_variant, timed
from ims_runtime.toolchain.export import export_retinaface_module, retinaface_metadata
from ims_runtime.toolchain.manifest import record
from ims_runtime.toolchain.models.retinaface import RetinaFace, load_official
from ims_runtime.toolchain.recipe import BaseSpec
from ims_runtime.toolchain.run_context import RunContext
from ims_runtime.toolchain.stamps import is_fresh, stamp_key, write_stamp


def build_network(base: BaseSpec, weights: Path) -> torch.nn.Module:
    state = torch.load(str(weights), map_location="cpu", weights_only=True)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if base.prune_ratio:  # channel counts differ from RetinaFace(): read them from the tensors
        return load_pruned(state, base.activation)
    model = RetinaFace()
    if base.activation == "relu":
        relu_variant(model)
    model.load_state_dict(state, strict=True)
    return model.eval()


def ensure_base_weights(run: RunContext, base_name: str) -> Path:
    base = run.recipe.bases[base_name]
    if base.prune_ratio:
        return _pruned_base(run, base_name)
    found = paths.find_file(base.weights)
    if found is not None:
        return found
    if base.distill_steps <= 0:
        raise errors.IMSError(errors.MODEL_NOT_FOUND, f"weights {base.weights} of base {base_name!r} not found",
                              "add their folder to IMS_MODEL_PATH, or set distill_steps to make them")
    return distill_base(run, base_name)


def _pruned_base(run: RunContext, base_name: str) -> Path:
    """The cache's pruned + distilled weights of ``base_name``, rebuilt when their stamp key changed."""
    out = paths.cache_dir() / run.recipe.bases[base_name].weights
    key = stamp_key("pruned base", run.recipe.bases[base_name].model_dump(),
                    paths.sha256_file(ensure_base_weights(run, "official")), run.data_key)
    if not is_fresh(out, key):
        distill_base(run, base_name)
        write_stamp(out, key)
    return out


def distill_base(run: RunContext, base_name: str) -> Path:
    """Make a base's weights by self-distillation from the official model on the calibration clips (after
    removing ``prune_ratio`` of the channels, if set)."""
    base = run.recipe.bases[base_name]
    official = ensure_base_weights(run, "official")
    teacher = load_official(str(official))
    student = copy.deepcopy(teacher)
    if base.activation == "relu":
        relu_variant(student)
    pruning: dict[str, object] = {}
    if base.prune_ratio:
        size = run.recipe.input_size_px
        before = params_and_macs(student, size)
        prune_retinaface(student, base.prune_ratio)
        pruning = {"prune_ratio": base.prune_ratio, "before": before, "after": params_and_macs(student, size),
                   "counted_at_wh_px": list(size), "method": "torch-pruning MetaPruner, L2 magnitude, heads kept, "
                   "kept channels rounded up to multiples of 8"}
        print(f"  pruned {base_name!r}: {before} -> {pruning['after']}")
    images = [image for _, _, image in fixed_rate_frames(run.calibration)]
    print(f"  distilling base {base_name!r} ({base.distill_steps} steps on {len(images)} calibration frames)")
    started = time.monotonic()
    losses = distill(student, teacher, images, DistillConfig(steps=base.distill_steps), timed(base_name))
    out = paths.cache_dir() / base.weights
    buffer = io.BytesIO()
    torch.save(student.state_dict(), buffer)
    atomic_write_bytes(out, buffer.getvalue())
    record(paths.cache_dir() / "manifest.json", out, recipe=f"self-distillation from {official.name}",
           data=run.calibration.describe(), steps=base.distill_steps, final_loss=losses[-1] if losses else None,
           first_loss=losses[0] if losses else None, distill_s=round(time.monotonic() - started, 1), **pruning)
    return out


def export_base(base: BaseSpec, weights: Path, out: Path, input_wh_px: tuple[int, int]) -> Path:
    model = build_network(base, weights)
    meta = {**retinaface_metadata(weights), "ims.activation": base.activation}
    if base.prune_ratio:
        meta["ims.prune_ratio"] = base.prune_ratio
    return export_retinaface_module(model, out, None if base.dynamic_shape else input_wh_px, meta)
