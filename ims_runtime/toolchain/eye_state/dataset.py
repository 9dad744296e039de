"""Teacher-labelled eye crops: detect faces (the runtime's FaceDetector), place both eye crops from the 5 landmarks
exactly as the runtime does (``ims_runtime.stages.eye_state``), label each eye with the teachers, cache one npz.

Sources (paths relative to the shared folder): every frame of the training clips (people blink every few seconds:
all frames are kept so that the few closed-eye frames are in), optionally a face folder such as UTKFace (many
identities; non-commercial research licence, which the manifest then records), never CEW (evaluation only).
Split by clip, never by frame: every eye of a held-apart clip is validation only.

Stored per eye: a *wide* grey crop (2S x 2S at twice the runtime crop's side, same resolution), whose centre S x S
is exactly the runtime crop, so augmentation can shift, scale and turn it; and the teachers' raw outputs.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from ims_runtime import paths
from ims_runtime.spec.schema import DetectorSpec
from ims_runtime.stages.eye_state import DEFAULT_IOD_RATIO, EyeCropper
from ims_runtime.stages.face_detector import FaceDetector
from ims_runtime.toolchain.face_state.dataset import DataRecipe as FaceDataRecipe
from ims_runtime.toolchain.npz_table import NpzTable
from ims_runtime.types import Frame

CACHE_FORMAT = 1


@dataclass(frozen=True)
class DataRecipe:
    #: the face-state network's split by clip (video04 held apart as a whole clip: never trained on)
    train_videos: tuple[str, ...] = FaceDataRecipe.train_videos
    val_videos: tuple[str, ...] = FaceDataRecipe.val_videos
    #: a folder of face photos (one face each) for more identities; None = footage only
    face_folder: str | None = "data/utkface/images"
    face_folder_licence: str = "UTKFace: non-commercial research only, copyright with the photos' owners"
    face_folder_max: int = 0            # 0 = every image
    frame_step: int = 1
    detector_input_px: tuple[int, int] = (1024, 576)
    face_folder_detector_input_px: tuple[int, int] = (256, 256)
    detector_score_threshold: float = 0.8
    min_iod_px: float = 12.0
    #: skip faces turned so far that the far eye is hidden: inter-ocular distance / box width below this
    min_iod_to_width: float = 0.3
    crop_size_px: int = 32
    iod_ratio: float = DEFAULT_IOD_RATIO
    #: the OMZ teacher's own crop side / inter-ocular distance (an eye with some lid and brow around it)
    omz_iod_ratio: float = 0.8


@dataclass
class EyeSet(NpzTable):
    """One row per eye. ``wide`` (N, 2S, 2S) uint8 grey; ``p_closed_omz`` (N,) OMZ P(closed); ``ear_iris`` (N,)
    MediaPipe Iris lid gap / eye width; ``clip`` (N,) source; ``frame`` (N,); ``eye`` (N,) 0 = image-left eye,
    1 = image-right; ``iod_px`` (N,); ``split`` (N,) 'train' / 'val'."""

    wide: np.ndarray
    p_closed_omz: np.ndarray
    ear_iris: np.ndarray
    clip: np.ndarray
    frame: np.ndarray
    eye: np.ndarray
    iod_px: np.ndarray
    split: np.ndarray


def _images(shared: Path, recipe: DataRecipe) -> Iterator[tuple[str, str, int, np.ndarray, bool]]:
    """(source name, split, index, BGR image, is a face-folder photo) over every source, in a fixed order."""
    for split, videos in (("train", recipe.train_videos), ("val", recipe.val_videos)):
        for rel in videos:
            cap = cv2.VideoCapture(str(shared / rel))
            index = 0
            while True:
                ok, image = cap.read()
                if not ok:
                    break
                if index % recipe.frame_step == 0:
                    yield Path(rel).stem, split, index, image, False
                index += 1
            cap.release()
    if recipe.face_folder:
        files = sorted((shared / recipe.face_folder).glob("*.jpg"))
        if recipe.face_folder_max:
            files = files[:recipe.face_folder_max]
        for i, path in enumerate(files):
            image = cv2.imread(str(path))
            if image is not None:
                yield "faces", "train", i, image, True


def cache_key(shared: Path, recipe: DataRecipe, teacher_versions: dict[str, str], detector_sha: str) -> str:
    files = sorted(f"{rel}:{(shared / rel).stat().st_size}" for rel in (*recipe.train_videos, *recipe.val_videos))
    if recipe.face_folder:
        folder = shared / recipe.face_folder
        files.append(f"{recipe.face_folder}:{sum(1 for _ in folder.glob('*.jpg'))}")
    blob = json.dumps({"format": CACHE_FORMAT, "recipe": asdict(recipe), "teachers": teacher_versions,
                       "detector": detector_sha, "files": files}, sort_keys=True, default=list)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build(shared: Path, recipe: DataRecipe, log=print) -> tuple[EyeSet, Path, dict]:
    """Label every eye (or load the cached set). Returns the eyes, the cache file and facts for the manifest."""
    from ims_runtime.toolchain.eye_state.teachers import (
        IrisEyeTeacher,
        OmzEyeTeacher,
        teacher_crops,
        teacher_versions,
    )

    video_detector = FaceDetector.from_spec(DetectorSpec(input_size_px=recipe.detector_input_px,
                                                         score_threshold=recipe.detector_score_threshold))
    photo_detector = FaceDetector.from_spec(DetectorSpec(input_size_px=recipe.face_folder_detector_input_px,
                                                         score_threshold=recipe.detector_score_threshold))
    versions = teacher_versions()
    key = cache_key(shared, recipe, versions, video_detector.model_sha256)
    path = paths.cache_dir() / "eye_state" / f"eyes-{key}.npz"
    facts = {"cache_key": key, "teacher_versions": versions, "detector_sha256": video_detector.model_sha256}
    if path.is_file():
        log(f"teacher labels: cached {path}")
        eyes = EyeSet.load(path)
        return eyes, path, {**facts, **counts(eyes)}
    omz, iris = OmzEyeTeacher(), IrisEyeTeacher()
    # the wide crop: twice the runtime crop's side at the same resolution, so its centre is the runtime crop
    wide_cropper = EyeCropper(2 * recipe.crop_size_px, 2 * recipe.iod_ratio)
    rows: dict[str, list] = {k: [] for k in EyeSet.__dataclass_fields__}
    t0, n_images = time.monotonic(), 0
    for source, split, index, image, is_photo in _images(shared, recipe):
        n_images += 1
        detector = photo_detector if is_photo else video_detector
        faces = detector.detect(Frame(index, 0, image)).faces
        if is_photo:
            faces = sorted(faces, key=lambda f: f.area_px2)[-1:]
        for face in faces:
            iod = float(np.linalg.norm(face.landmarks_px[1] - face.landmarks_px[0]))
            if iod < recipe.min_iod_px or iod < recipe.min_iod_to_width * face.width_px:
                continue
            wide = wide_cropper.crop(image, face.landmarks_px).grey.copy()
            crops = teacher_crops(image, face.landmarks_px, recipe.omz_iod_ratio)
            p_closed = omz.p_closed([c["omz"] for c in crops])
            for eye, c in enumerate(crops):
                for k, v in (("wide", wide[eye]), ("p_closed_omz", p_closed[eye]),
                             ("ear_iris", iris.aspect_ratio(c["iris"], c["mirrored"])), ("clip", source),
                             ("frame", index), ("eye", eye), ("iod_px", iod), ("split", split)):
                    rows[k].append(v)
        if n_images % 500 == 0:
            log(f"  {n_images} images, {len(rows['wide'])} eyes, {time.monotonic() - t0:.0f} s")
    eyes = EyeSet(wide=np.stack(rows["wide"]), p_closed_omz=np.array(rows["p_closed_omz"], np.float32),
                  ear_iris=np.array(rows["ear_iris"], np.float32), clip=np.array(rows["clip"]),
                  frame=np.array(rows["frame"], np.int32), eye=np.array(rows["eye"], np.int8),
                  iod_px=np.array(rows["iod_px"], np.float32), split=np.array(rows["split"]))
    eyes.save(path)
    log(f"teacher labels: {len(eyes.wide)} eyes from {n_images} images in {time.monotonic() - t0:.0f} s → {path}")
    return eyes, path, {**facts, **counts(eyes)}


def counts(eyes: EyeSet) -> dict:
    return {"eyes_train": int((eyes.split == "train").sum()), "eyes_val": int((eyes.split == "val").sum()),
            "eyes_from_face_folder": int((eyes.clip == "faces").sum()),
            "clips_train": sorted({c for c, s in zip(eyes.clip.tolist(), eyes.split.tolist())
                                   if s == "train" and c != "faces"}),
            "clips_val": sorted(set(eyes.clip[eyes.split == "val"].tolist()))}
