"""The deployed INT8 detector: small, runs in the runtime, and agrees with FP32 on held-apart real frames."""

import pytest
from conftest import SPECS, shared

from ims_runtime import catalog
from ims_runtime.spec import load_spec
from ims_runtime.toolchain.calibration import FrameSample, fixed_rate_frames
from ims_runtime.toolchain.evaluate import agreement_with_reference


@pytest.fixture(scope="module")
def int8_model(detector_model):
    return catalog.resolve("retinaface_mnet025_int8")


def test_dev_spec_deploys_int8_and_the_fp32_reference_stays_fp32(int8_model):
    dev = load_spec(SPECS / "dev-cpu.yaml").spec.stages.face_detector
    ref = load_spec(SPECS / "dev-cpu-fp32.yaml").spec.stages.face_detector
    assert catalog.resolve(dev.model) == int8_model and dev.precision.startswith("int8")
    assert ref.model == "retinaface_mnet025_fp32" and ref.precision == "fp32"


def test_int8_file_is_at_most_30_percent_of_fp32(int8_model, detector_model):
    # issue 5's target; holds by a few dozen bytes (29.997 %, docs/optimisation.md): a change that adds bytes to
    # the deployed file (metadata, a layer kept in float) has to be paid for elsewhere
    assert int8_model.stat().st_size <= 0.30 * detector_model.stat().st_size


@pytest.mark.slow
def test_int8_agrees_with_fp32_on_frames_of_a_clip_never_calibrated_on(int8_model, detector_model):
    clip = shared("data", "videos", "video04.mp4")  # the recipe calibrates on video00-02 only
    frames = [image for _, _, image in fixed_rate_frames(FrameSample((clip,), every_s=2.0, max_per_clip=6))]
    result = agreement_with_reference(int8_model, detector_model, frames, (640, 384))
    assert result["reference_faces"] >= 6
    assert result["found_share"] >= 0.9
    assert result["mean_box_iou"] >= 0.85
    assert result["mean_landmark_error_iod"] < 0.1
