"""Teacher-labelled face crops: detect faces in the shared clips and WIDER images, label each with the teachers,
store a wide aligned crop per face, cache everything in one npz keyed by data + teacher + detector versions.

Split by clip, never by frame: every face of a held-apart clip is validation; WIDER images are training only.
Every face of a decent size is used (not just the driver's), to see more identities.

Face folders (``face_folders``, e.g. UTKFace's 200x200 face chips: thousands of identities, ages and poses) are
labelled the same way, one face per image (the largest the detector finds in the image padded by replication, so
that a face filling the chip is still found and FaceMesh's 1.5x region has context), split by file (a hash of the
file name puts ``face_folder_val_percent`` % into validation). They are cached apart from the clips, one npz per
folder, so adding a folder does not relabel the clips.
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
    #: folders of face photos, relative to the shared folder (any folder of .jpg/.png faces works)
    face_folders: tuple[str, ...] = ()
    face_folder_val_percent: int = 10
    #: each side of a face photo is padded (replicated) by this fraction of its size before detection
    face_folder_pad_frac: float = 0.5
    face_folder_detector_input_px: tuple[int, int] = (320, 320)
    #: at most this many files per folder (sorted by name; None = all): for quick trials
    face_folder_limit: int | None = None

    def clip_fields(self) -> dict:
        """The fields that decide the clip/WIDER labels (the cache key of that part)."""
        return {k: v for k, v in asdict(self).items() if not k.startswith("face_folder")}


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


class _FaceRows:
    """Collects labelled faces one at a time (the wide aligned crop cut here) and stacks them into
    :class:`LabelledFaces`."""

    def __init__(self, recipe: DataRecipe) -> None:
        self.recipe = recipe
        self.rows: dict[str, list] = {k: [] for k in LabelledFaces.__dataclass_fields__}

    def __len__(self) -> int:
        return len(self.rows["crops"])

    def add(self, image: np.ndarray, landmarks: np.ndarray, labels: np.ndarray, clip: str, split: str, index: int,
            box) -> None:
        aligned = align_face(image, landmarks, self.recipe.crop_size_px, self.recipe.margin_px)
        for k, v in (("crops", aligned.crop_bgr), ("labels", labels), ("roll_deg", aligned.roll_deg),
                     ("clip", clip), ("frame", index), ("split", split),
                     ("box_xyxy_px", np.asarray(box, np.float32)), ("landmarks_px", landmarks.astype(np.float32))):
            self.rows[k].append(v)

    def faces(self) -> LabelledFaces:
        r = self.rows
        return LabelledFaces(crops=np.stack(r["crops"]), labels=np.stack(r["labels"]).astype(np.float32),
                             roll_deg=np.array(r["roll_deg"], np.float32), clip=np.array(r["clip"]),
                             frame=np.array(r["frame"], np.int32), split=np.array(r["split"]),
                             box_xyxy_px=np.stack(r["box_xyxy_px"]), landmarks_px=np.stack(r["landmarks_px"]))


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
    blob = json.dumps({"format": CACHE_FORMAT, "recipe": recipe.clip_fields(), "teachers": teacher_versions,
                       "detector": detector_sha, "files": files}, sort_keys=True, default=list)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build(shared: Path, recipe: DataRecipe, log=print) -> tuple[LabelledFaces, Path, dict]:
    """Label every face (or load the cached labels): the clips and WIDER images, then each face folder. Returns the
    faces, the clips' cache file and facts for the manifest."""
    faces, path, facts = _build_clips(shared, recipe, log)
    folder_caches = []
    for rel in recipe.face_folders:
        folder_faces, folder_path = _build_folder(shared, rel, recipe, log)
        faces = concatenate([faces, folder_faces])
        folder_caches.append(folder_path.name)
    if folder_caches:
        facts = {**facts, "face_folder_label_caches": folder_caches, **_counts(faces)}
    return faces, path, facts


def concatenate(parts: list[LabelledFaces]) -> LabelledFaces:
    return LabelledFaces(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in LabelledFaces.__dataclass_fields__})


def _folder_files(shared: Path, rel: str, recipe: DataRecipe) -> list[Path]:
    files = sorted(p for p in (shared / rel).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return files[:recipe.face_folder_limit] if recipe.face_folder_limit else files


def folder_split(name: str, val_percent: int) -> str:
    """'val' for ``val_percent`` % of file names (a stable hash, independent of the folder's order), else 'train'."""
    return "val" if int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % 100 < val_percent else "train"


def _build_folder(shared: Path, rel: str, recipe: DataRecipe, log=print,
                  cache_root: Path | None = None) -> tuple[LabelledFaces, Path]:
    """One face per photo of a face folder, labelled by the teachers; cached in its own npz (under
    ``cache_root``, default ``$IMS_CACHE_DIR/face_state``)."""
    from ims_runtime.toolchain.face_state.teachers import Teachers, teacher_versions

    detector = FaceDetector.from_spec(DetectorSpec(input_size_px=recipe.face_folder_detector_input_px,
                                                   score_threshold=recipe.detector_score_threshold))
    files = _folder_files(shared, rel, recipe)
    fields = {k: v for k, v in asdict(recipe).items() if k.startswith("face_folder") or k in (
        "detector_score_threshold", "min_face_height_px", "min_teacher_face_score", "crop_size_px", "margin_px")}
    fields.pop("face_folders")
    blob = json.dumps({"format": CACHE_FORMAT, "folder": rel, "recipe": fields, "teachers": teacher_versions(),
                       "detector": detector.model_sha256, "files": [f"{p.name}:{p.stat().st_size}" for p in files]},
                      sort_keys=True, default=list)
    key = hashlib.sha256(blob.encode()).hexdigest()[:16]
    source = Path(rel).parent.name if Path(rel).name == "images" else Path(rel).name
    path = (cache_root or paths.cache_dir() / "face_state") / f"folder-{source}-{key}.npz"
    if path.is_file():
        log(f"teacher labels ({rel}): cached {path}")
        return LabelledFaces.load(path), path
    teachers = Teachers()
    rows = _FaceRows(recipe)
    t0, dropped = time.monotonic(), 0
    for i, file in enumerate(files):
        image = cv2.imread(str(file))
        if image is None:
            dropped += 1
            continue
        pad = round(recipe.face_folder_pad_frac * max(image.shape[:2]))
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        faces = [f for f in detector.detect(Frame(i, 0, image)).faces if f.height_px >= recipe.min_face_height_px]
        if not faces:
            dropped += 1
            continue
        face = max(faces, key=lambda f: f.height_px)
        labels = teachers.label(image, face.box_xyxy_px, face.landmarks_px)
        if labels.face_score < recipe.min_teacher_face_score:
            dropped += 1
            continue
        rows.add(image, face.landmarks_px, labels.as_array(), f"{source}/{file.stem}",
                 folder_split(file.name, recipe.face_folder_val_percent), i, face.box_xyxy_px)
        if (i + 1) % 500 == 0:
            log(f"  {rel}: {i + 1}/{len(files)} images, {len(rows)} faces, {time.monotonic() - t0:.0f} s")
    faces = rows.faces()
    faces.save(path)
    log(f"teacher labels ({rel}): {len(faces.crops)} faces from {len(files)} images in {time.monotonic() - t0:.0f} s "
        f"({dropped} without a detected face or with a low FaceMesh score) → {path}")
    return faces, path


def _build_clips(shared: Path, recipe: DataRecipe, log=print) -> tuple[LabelledFaces, Path, dict]:
    """Label every face of the clips and WIDER images (or load the cached labels)."""
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
    rows = _FaceRows(recipe)

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
            rows.add(image, face.landmarks_px, labels.as_array(), clip, split, index, face.box_xyxy_px)
        if kept and rng.random() < recipe.negatives_per_image:
            negative = _negative(rng, image.shape, kept[0], detected)
            if negative is not None:
                rows.add(image, negative[0], negative[1], clip, split, index, negative[2])
        if n_images % 50 == 0:
            log(f"  {n_images} images, {len(rows)} faces, {time.monotonic() - t0:.0f} s")
    faces = rows.faces()
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
            # a face folder counts as one validation source ('utkface/<file>' → 'utkface')
            "clips_val": sorted({c.split("/", 1)[0] for c, s in zip(faces.clip.tolist(), faces.split.tolist())
                                 if s == "val"}),
            "sources": len(clips)}
