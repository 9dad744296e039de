"""Teacher-labelled face crops: detect faces in the shared clips and WIDER images, label each with the teachers,
store a wide aligned crop per face, cache everything in one npz keyed by data + teacher + detector versions.

Split by clip, never by frame: every face of a held-apart clip is validation; WIDER images are training only.
Every face of a decent size is used (not just the driver's), to see more identities.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ims_runtime import paths
from ims_runtime.spec.schema import DetectorSpec
from ims_runtime.stages.alignment import align_face
from ims_runtime.stages.face_detector import FaceDetector
from ims_runtime.toolchain.npz_table import NpzTable
from ims_runtime.types import Frame

CACHE_FORMAT = 1


@dataclass(frozen=True)
class DataRecipe:
    """Which images, which faces, how crops are stored. Paths are relative to the shared folder."""

    train_videos: tuple[str, ...] = ("data/videos/video00.mp4", "data/videos/video01.mp4",
                                     "data/videos/video02.mp4")
    val_videos: tuple[str, ...] = ("data/videos/video04.mp4",)
    wider_images: str | None = "data/widerface_val_subset/images"
    train_frame_step: int = 2
    val_frame_step: int = 1
    detector_input_px: tuple[int, int] = (1024, 576)
    detector_score_threshold: float = 0.8
    min_face_height_px: float = 48.0
    min_teacher_face_score: float = 0.5
    crop_size_px: int = 112
    #: stored crops have this much extra context on each side, for scale/rotation/shift augmentation
    margin_px: int = 16
    #: chance per image of one non-face crop (the landmarks of a face moved onto background): teaches `confidence`
    negatives_per_image: float = 1.0
    seed: int = 0
    extra: dict = field(default_factory=dict)


@dataclass
class LabelledFaces(NpzTable):
    """Arrays, one row per face. ``crops`` (N, S+2m, S+2m, 3) uint8 BGR wide aligned crops; ``labels`` (N, 9)
    teacher labels in the image frame (see ``teachers.LABEL_FIELDS``); ``roll_deg`` (N,) the alignment's
    de-rotation; ``clip`` (N,) source name; ``frame`` (N,) frame index; ``split`` (N,) 'train' or 'val'."""

    crops: np.ndarray
    labels: np.ndarray
    roll_deg: np.ndarray
    clip: np.ndarray
    frame: np.ndarray
    split: np.ndarray
    box_xyxy_px: np.ndarray
    landmarks_px: np.ndarray


def _images(shared: Path, recipe: DataRecipe) -> Iterator[tuple[str, str, int, np.ndarray]]:
    """(clip name, split, frame index, BGR image) over every source, in a fixed order."""
    for split, videos, step in (("train", recipe.train_videos, recipe.train_frame_step),
                                ("val", recipe.val_videos, recipe.val_frame_step)):
        for rel in videos:
            cap = cv2.VideoCapture(str(shared / rel))
            index = 0
            while True:
                ok, image = cap.read()
                if not ok:
                    break
                if index % step == 0:
                    yield Path(rel).stem, split, index, image
                index += 1
            cap.release()
    if recipe.wider_images:
        for i, path in enumerate(sorted((shared / recipe.wider_images).glob("*.jpg"))):
            image = cv2.imread(str(path))
            if image is not None:
                yield f"wider/{path.stem}", "train", i, image


def cache_key(shared: Path, recipe: DataRecipe, teacher_versions: dict[str, str], detector_sha: str) -> str:
    files = sorted(str(p.relative_to(shared)) + f":{p.stat().st_size}"
                   for rel in (*recipe.train_videos, *recipe.val_videos) for p in [shared / rel])
    if recipe.wider_images:
        files += sorted(f"{p.name}:{p.stat().st_size}" for p in (shared / recipe.wider_images).glob("*.jpg"))
    blob = json.dumps({"format": CACHE_FORMAT, "recipe": asdict(recipe), "teachers": teacher_versions,
                       "detector": detector_sha, "files": files}, sort_keys=True, default=list)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build(shared: Path, recipe: DataRecipe, log=print) -> tuple[LabelledFaces, Path, dict]:
    """Label every face (or load the cached labels). Returns the faces, the cache file and facts for the manifest."""
    from ims_runtime.toolchain.face_state.teachers import Teachers, teacher_versions

    detector = FaceDetector.from_spec(DetectorSpec(input_size_px=recipe.detector_input_px,
                                                   score_threshold=recipe.detector_score_threshold))
    versions = teacher_versions()
    key = cache_key(shared, recipe, versions, detector.model_sha256)
    path = paths.cache_dir() / "face_state" / f"labels-{key}.npz"
    facts = {"cache_key": key, "teacher_versions": versions, "detector_sha256": detector.model_sha256}
    if path.is_file():
        log(f"teacher labels: cached {path}")
        faces = LabelledFaces.load(path)
        return faces, path, {**facts, **_counts(faces)}
    teachers = Teachers()
    rng = np.random.default_rng(recipe.seed)
    rows: dict[str, list] = {k: [] for k in LabelledFaces.__dataclass_fields__}

    def add(image, landmarks, labels, clip, split, index, box) -> None:
        aligned = align_face(image, landmarks, recipe.crop_size_px, recipe.margin_px)
        for k, v in (("crops", aligned.crop_bgr), ("labels", labels), ("roll_deg", aligned.roll_deg),
                     ("clip", clip), ("frame", index), ("split", split),
                     ("box_xyxy_px", np.asarray(box, np.float32)), ("landmarks_px", landmarks.astype(np.float32))):
            rows[k].append(v)

    t0, n_images, dropped = time.monotonic(), 0, 0
    for clip, split, index, image in _images(shared, recipe):
        n_images += 1
        detected = detector.detect(Frame(index, 0, image)).faces
        kept = [f for f in detected if f.height_px >= recipe.min_face_height_px]
        for face in kept:
            labels = teachers.label(image, face.box_xyxy_px, face.landmarks_px)
            if labels.face_score < recipe.min_teacher_face_score:
                dropped += 1
                continue
            add(image, face.landmarks_px, labels.as_array(), clip, split, index, face.box_xyxy_px)
        if kept and rng.random() < recipe.negatives_per_image:
            negative = _negative(rng, image.shape, kept[0], detected)
            if negative is not None:
                add(image, negative[0], negative[1], clip, split, index, negative[2])
        if n_images % 50 == 0:
            log(f"  {n_images} images, {len(rows['crops'])} faces, {time.monotonic() - t0:.0f} s")
    faces = LabelledFaces(crops=np.stack(rows["crops"]), labels=np.stack(rows["labels"]).astype(np.float32),
                          roll_deg=np.array(rows["roll_deg"], np.float32), clip=np.array(rows["clip"]),
                          frame=np.array(rows["frame"], np.int32), split=np.array(rows["split"]),
                          box_xyxy_px=np.stack(rows["box_xyxy_px"]), landmarks_px=np.stack(rows["landmarks_px"]))
    faces.save(path)
    log(f"teacher labels: {len(faces.crops)} faces from {n_images} images in {time.monotonic() - t0:.0f} s "
        f"({dropped} dropped for a low FaceMesh score) → {path}")
    return faces, path, {**facts, **_counts(faces)}


def _negative(rng: np.random.Generator, shape: tuple[int, ...], face, detected, tries: int = 20):
    """A face's landmark pattern moved to a random place that overlaps no detected face: (landmarks, labels, box).

    Labels are NaN (no teacher value) except the face score, 0."""
    from ims_runtime.stages._retinaface_decode import iou_xyxy

    h, w = shape[:2]
    x0, y0, x1, y1 = face.box_xyxy_px
    bw, bh = x1 - x0, y1 - y0
    if bw >= w or bh >= h:
        return None
    boxes = np.array([f.box_xyxy_px for f in detected], np.float32)
    for _ in range(tries):
        nx, ny = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        box = np.array([nx, ny, nx + bw, ny + bh], np.float32)
        if iou_xyxy(box[None], boxes).max() < 0.05:
            labels = np.full(9, np.nan, np.float32)
            labels[8] = 0.0
            return face.landmarks_px + np.array([nx - x0, ny - y0], np.float32), labels, box
    return None


def _counts(faces: LabelledFaces) -> dict:
    clips = sorted(set(faces.clip.tolist()))
    is_face = faces.labels[:, 8] > 0
    return {"faces_train": int(((faces.split == "train") & is_face).sum()),
            "faces_val": int(((faces.split == "val") & is_face).sum()),
            "negatives_train": int(((faces.split == "train") & ~is_face).sum()),
            "clips_val": sorted({c for c, s in zip(faces.clip.tolist(), faces.split.tolist()) if s == "val"}),
            "sources": len(clips)}
