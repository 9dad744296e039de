"""Structured pruning of the RetinaFace detector (ims_runtime/toolchain/detector_pruning.py, bases.py): channels
really removed, the pruned network runs and persists exactly, a short distillation runs. Real official weights
(../shared/models), real footage (../shared/data/videos), real ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import shared

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")

from ims_runtime.toolchain import detector_pruning as dp
from ims_runtime.toolchain.models.retinaface import load_official
from ims_runtime.toolchain.recipe import BaseSpec

INPUT_WH_PX = (320, 192)
HEAD_OUT_CHANNELS = {"ClassHead": 4, "BboxHead": 8, "LandmarkHead": 20}  # 2 anchors x 2 / 4 / 10 values


def official() -> torch.nn.Module:
    return load_official(str(shared("models", "retinaface", "mobilenet0.25_Final.pth")))


@pytest.fixture(scope="module")
def pruned() -> torch.nn.Module:
    torch.set_num_threads(1)
    return dp.prune_retinaface(official(), 0.3, INPUT_WH_PX)


def test_kept_channels_are_multiples_of_8_and_never_below_the_ratio():
    assert [dp.kept_channels(c, 0.3) for c in (8, 16, 32, 64, 128, 256)] == [8, 16, 24, 48, 96, 184]
    assert dp.kept_channels(64, 0.0) == 64
    assert dp.kept_channels(8, 0.9) == 8  # a layer is never emptied


def test_pruning_removes_channels_but_not_the_heads_outputs(pruned):
    before_channels = dp.conv_channels(official())
    after_channels = dp.conv_channels(pruned)
    before = dp.params_and_macs(official(), INPUT_WH_PX)
    after = dp.params_and_macs(pruned, INPUT_WH_PX)
    assert after["params"] < 0.75 * before["params"] and after["macs"] < 0.75 * before["macs"]
    narrowed = [name for name in before_channels if after_channels[name][1] < before_channels[name][1]]
    assert len(narrowed) > 20
    for name, (in_ch, out_ch) in after_channels.items():
        head = name.split(".")[0]
        if head in HEAD_OUT_CHANNELS:
            assert out_ch == HEAD_OUT_CHANNELS[head], name
            assert in_ch < before_channels[name][0], name  # heads read the narrowed SSH outputs
        else:
            assert out_ch % 8 == 0 and out_ch >= 0.7 * before_channels[name][1], (name, out_ch)


def test_pruned_network_runs_with_the_official_output_shapes(pruned):
    x = torch.from_numpy(np.random.default_rng(0).normal(0, 50, (1, 3, 192, 320)).astype(np.float32))
    with torch.no_grad():
        expected = [t.shape for t in official()(x)]
        loc, conf, landms = pruned(x)
    assert [loc.shape, conf.shape, landms.shape] == expected
    assert torch.allclose(conf.sum(-1), torch.ones(1))  # still a softmax over [background, face]


def test_persisted_pruned_network_reloads_exactly_and_exports(pruned, tmp_path):
    import onnxruntime as ort

    from ims_runtime.toolchain.bases import build_network, export_base

    weights = tmp_path / "pruned.pth"
    dp.save_pruned(pruned, weights)
    base = BaseSpec(weights=weights.name, prune_ratio=0.3)
    reloaded = build_network(base, weights)
    assert dp.conv_channels(reloaded) == dp.conv_channels(pruned)
    x = torch.from_numpy(np.random.default_rng(1).normal(0, 50, (1, 3, 192, 320)).astype(np.float32))
    with torch.no_grad():
        for a, b in zip(pruned(x), reloaded(x)):
            assert torch.equal(a, b)
    onnx_path = export_base(base, weights, tmp_path / "pruned.onnx", INPUT_WH_PX)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    conf = session.run(["conf"], {"input": x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(conf, pruned(x)[1].numpy(), atol=1e-4)


@pytest.mark.slow
def test_a_short_distillation_moves_the_pruned_network_towards_the_teacher(pruned):
    import copy

    from ims_runtime.toolchain.calibration import FrameSample, fixed_rate_frames
    from ims_runtime.toolchain.distill import DistillConfig, distill

    clip = shared("data", "videos", "video00.mp4")
    images = [image for _, _, image in fixed_rate_frames(FrameSample((clip,), every_s=0.5, max_per_clip=2))]
    student = copy.deepcopy(pruned)
    before = [p.detach().clone() for p in student.parameters()]
    losses = distill(student, official(), images, DistillConfig(steps=3, batch=2, crop_wh_px=(160, 96)))
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert any(not torch.equal(a, b) for a, b in zip(before, student.parameters()))


def test_pruned_detector_base_is_in_the_recipe_and_stamped_by_its_spec():
    from ims_runtime.toolchain.recipe import load_recipe

    recipe = load_recipe(Path(__file__).resolve().parents[2] / "deploy" / "recipes" / "detector.yaml")
    base = recipe.bases["pruned30"]
    assert base.prune_ratio > 0 and base.distill_steps > 0
    assert {v.name for v in recipe.variants if v.base == "pruned30"} >= {"pruned30_fp32", "pruned30_int8"}
