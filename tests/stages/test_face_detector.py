"""The detector stage on real images, grey frames, the model contract and the driver choice."""

import cv2
import numpy as np
import pytest
from conftest import shared

from ims_runtime import errors
from ims_runtime.spec.schema import DetectorSpec, RegionSpec
from ims_runtime.stages.face_detector import DriverSelector, FaceDetector, Letterboxer
from ims_runtime.types import FaceDetection, Frame


def _frame(name: str, grey: bool = False) -> Frame:
    image = cv2.imread(str(shared("data", "videos", name)))
    if grey:
        image = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return Frame(0, 0, image, name)


@pytest.mark.parametrize("name, faces", [
    ("image00.jpg", 1),  # one woman, portrait photo
    ("image01.jpg", 1),  # one person, close up
    ("image02.jpg", 4),  # four people around a table
])
def test_finds_every_clearly_visible_face_in_real_photos(detector, name, faces):
    result = detector.detect(_frame(name))
    assert len(result.faces) == faces
    assert result.driver is result.faces[result.driver_index]
    for face in result.faces:
        assert face.score > 0.9
        x0, y0, x1, y1 = face.box_xyxy_px
        # landmarks (eyes, nose, mouth corners) lie inside their face box
        assert np.all((face.landmarks_px[:, 0] >= x0) & (face.landmarks_px[:, 0] <= x1))
        assert np.all((face.landmarks_px[:, 1] >= y0) & (face.landmarks_px[:, 1] <= y1))
        # RetinaFace order: the eyes are above the mouth corners
        assert face.landmarks_px[:2, 1].max() < face.landmarks_px[3:, 1].min()


def test_grey_nir_like_frames_find_the_same_face(detector):
    colour = detector.detect(_frame("image00.jpg")).driver
    grey = detector.detect(_frame("image00.jpg", grey=True)).driver
    assert grey is not None
    iou = _iou(colour.box_xyxy_px, grey.box_xyxy_px)
    assert iou > 0.9


def test_driver_is_the_largest_face(detector):
    result = detector.detect(_frame("image02.jpg"))
    areas = [f.area_px2 for f in result.faces]
    assert result.driver_index == int(np.argmax(areas))


def test_letterbox_keeps_aspect_and_pads_with_zero_after_mean_subtraction():
    box = Letterboxer((64, 32))
    tensor, lb = box(np.full((100, 100, 3), 200, np.uint8))
    assert lb.scale == pytest.approx(0.32) and lb.offset_xy_px == (0.0, 0.0)
    assert tensor.shape == (1, 3, 32, 64)
    assert np.all(tensor[0, :, :, 40:] == 0)  # padding: mean colour, zero after subtraction
    np.testing.assert_allclose(tensor[0, :, 5, 5], [96, 83, 77])  # 200 - (104, 117, 123)


@pytest.fixture(scope="module")
def static_320x192_model(tmp_path_factory, detector_model):
    """A RetinaFace export with a fixed 320x192 input (as QNN and TensorRT want)."""
    import subprocess
    import sys
    out = tmp_path_factory.mktemp("static") / "rf_320x192.onnx"
    subprocess.run([sys.executable, "-m", "ims_runtime.toolchain.cli", "export", "retinaface", "--input-size",
                    "320", "192", "--out", str(out)], check=True, capture_output=True)
    return out


def test_a_model_of_the_wrong_fixed_size_is_refused_at_load(static_320x192_model):
    out = static_320x192_model
    with pytest.raises(errors.IMSError) as info:
        FaceDetector.from_spec(DetectorSpec(model=str(out), input_size_px=(640, 384)))
    assert info.value.code is errors.MODEL_CONTRACT and "320x192" in info.value.message
    fitting = FaceDetector.from_spec(DetectorSpec(model=str(out), input_size_px=(320, 192)))
    try:  # the right size opens and finds the face in a real photo
        assert len(fitting.detect(_frame("image00.jpg")).faces) == 1
    finally:
        fitting.close()


def _face(x0, y0, size):
    return FaceDetection((x0, y0, x0 + size, y0 + size), 0.99, np.zeros((5, 2), np.float32))


def _iou(a, b):
    from ims_runtime.stages._retinaface_decode import iou_xyxy
    return float(iou_xyxy(np.array([a]), np.array([b]))[0, 0])


class TestDriverChoice:
    FRAME = (1000, 500)

    def test_faces_outside_the_driver_region_are_never_the_driver(self):
        # driver region: left half of the image (a right-hand-drive cabin camera, say)
        chooser = DriverSelector(RegionSpec(x_max=0.5), 0, 1.5)
        faces = [_face(700, 100, 200), _face(100, 100, 100)]
        assert chooser.choose(faces, self.FRAME) == 1

    def test_a_passenger_leaning_in_slightly_larger_does_not_steal_the_driver_slot(self):
        chooser = DriverSelector(RegionSpec(), 0, 1.5)
        assert chooser.choose([_face(100, 100, 100)], self.FRAME) == 0
        # passenger face 1.2x the driver's area appears: the tracked driver stays
        faces = [_face(400, 100, 110), _face(102, 100, 100)]
        assert chooser.choose(faces, self.FRAME) == 1

    def test_a_much_larger_face_takes_over(self):
        chooser = DriverSelector(RegionSpec(), 0, 1.5)
        chooser.choose([_face(100, 100, 100)], self.FRAME)
        faces = [_face(400, 100, 200), _face(102, 100, 100)]  # 4x the area
        assert chooser.choose(faces, self.FRAME) == 0

    def test_faces_below_the_minimum_height_are_ignored(self):
        chooser = DriverSelector(RegionSpec(), 80, 1.5)
        assert chooser.choose([_face(100, 100, 50)], self.FRAME) is None


def test_tracking_follows_the_driver_like_full_detection_on_a_real_clip(dev_spec, clip):
    from ims_runtime.pipeline.sources import VideoFileSource
    from ims_runtime.spec.schema import TrackingSpec

    spec = dev_spec.stages.face_detector
    full = FaceDetector.from_spec(spec)
    tracked = FaceDetector.from_spec(spec.model_copy(update={"tracking": TrackingSpec(redetect_every_n_frames=10)}))
    frames = [f for _, f in zip(range(40), VideoFileSource(clip).frames())]
    ious = [_iou(full.detect(f).driver.box_xyxy_px, tracked.detect(f).driver.box_xyxy_px) for f in frames]
    # the crop re-detection stays on the same face as full-frame detection
    assert min(ious) > 0.6
    # and most frames only ran the crop: full detection every 10th frame
    assert tracked.full_detections == 4 and tracked.roi_detections == 36


def test_background_redetection_keeps_following_the_driver_and_runs_full_detection_off_the_frame_path(
        dev_spec, clip):
    from ims_runtime.pipeline.sources import VideoFileSource
    from ims_runtime.spec.schema import TrackingSpec

    spec = dev_spec.stages.face_detector
    full = FaceDetector.from_spec(spec)
    tracked = FaceDetector.from_spec(spec.model_copy(update={"tracking": TrackingSpec(
        redetect_every_n_frames=5, background_redetect=True)}))
    try:
        frames = [f for _, f in zip(range(40), VideoFileSource(clip).frames())]
        ious = [_iou(full.detect(f).driver.box_xyxy_px, tracked.detect(f).driver.box_xyxy_px) for f in frames]
    finally:
        tracked.close()
    assert min(ious) > 0.6
    # only the first frame ran the full detector in line; every later frame was answered by the crop tracker
    # while full detections ran on the worker thread
    assert tracked.roi_detections == 39 and tracked.full_detections >= 4


def test_tracking_needs_a_dynamic_size_model(static_320x192_model):
    from ims_runtime.spec.schema import TrackingSpec
    out = static_320x192_model
    with pytest.raises(errors.IMSError, match="dynamic-size model"):
        FaceDetector.from_spec(DetectorSpec(model=str(out), input_size_px=(320, 192), tracking=TrackingSpec()))
