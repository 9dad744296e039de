"""``ims-runtime eval-detector``: recall at IoU 0.5 and AP of the spec's detector on WIDER-style ground truth.

All faces in each image count (not just the driver). Faces shorter than --min-height-px, invalid ones and the
'ignore' subset are ignore regions. This is the yardstick every optimised detector variant is held to.

Every image is evaluated on its own: the spec's detection skipping (``stages.face_detector.tracking``) would carry
a tracked face from one unrelated still image into the next, so it is switched off here (and the output says so).

``--part search|report`` scores one half of the deterministic file-name-hash split the optimisation toolchain uses
(``ims_runtime/eval/data_split.py``): the mixed-precision search decides on ``search``, reports quote ``report``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from ims_runtime import errors, inputs, logs
from ims_runtime.atomic import atomic_write_text, check_output_path
from ims_runtime.commands._common import add_spec_args, load
from ims_runtime.eval.data_split import PARTS, HashSplit
from ims_runtime.eval.detector_eval import SCORE_FLOOR, evaluate, parse_gt
from ims_runtime.stages.face_detector import FaceDetector


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval-detector", help="detector recall / AP on WIDER-style ground truth",
                       description=__doc__)
    add_spec_args(p)
    p.add_argument("--images", type=Path, required=True, help="folder of the ground truth's images")
    p.add_argument("--gt", type=Path, required=True, help="WIDER-style gt.txt")
    p.add_argument("--min-height-px", type=inputs.cli_number(0.0, 10000.0), default=16.0,
                   help="smaller faces are ignored (pixels, default 16)")
    p.add_argument("--part", choices=PARTS, help="score only this half of the file-name-hash split "
                   "(search: what the toolchain's decisions saw; report: what they never saw); default all images")
    p.add_argument("--json", type=Path, help="write the scores as JSON here (atomically: complete or absent)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logs.configure("warning")
    # every input and the output are checked before the detector is built
    if args.json is not None:
        check_output_path(args.json, "--json")
    if not args.images.is_dir():
        raise errors.IMSError(errors.SOURCE_NOT_FOUND, f"--images {args.images} is not a folder",
                              "pass the folder the ground truth's image paths are relative to")
    gt = parse_gt(args.gt)
    if args.part:
        gt = HashSplit().select(gt, args.part, lambda item: item.path)
    if not any(item.counted(args.min_height_px).any() for item in gt):
        raise errors.IMSError(errors.SOURCE_UNREADABLE, f"{args.gt}: no face counts (every face is invalid, "
                              f"'ignore' or shorter than --min-height-px {args.min_height_px:g})",
                              "recall and AP would be meaningless; check the ground truth or lower --min-height-px")
    loaded = load(args)
    spec = loaded.spec.stages.face_detector
    # score every detection down to a low floor for AP; recall is read at the spec's operating threshold
    # tracking off: still images are unrelated, a face tracked from the previous image means nothing here
    low = spec.model_copy(update={"score_threshold": SCORE_FLOOR, "max_faces": 1000, "tracking": None})
    if spec.tracking is not None:
        print("note: the spec's tracking is off for this evaluation (every image is evaluated on its own)",
              file=sys.stderr)
    detector = FaceDetector.from_spec(low, loaded.path.parent)
    with tqdm(total=len(gt), unit="img", disable=not sys.stderr.isatty(), file=sys.stderr) as bar:
        scores = evaluate(detector, args.images, gt, args.min_height_px, spec.score_threshold, bar.update)
    detector.close()
    result = {"spec": loaded.spec.name, "model": detector.describe(), "part": args.part or "all",
              **scores.to_dict()}
    print(f"images {scores.images} ({args.part or 'all'}), faces ≥ {args.min_height_px:g} px: "
          f"{scores.faces_counted}, input {scores.input_size_px[0]}x{scores.input_size_px[1]}")
    print(f"recall@IoU0.5 (score ≥ {spec.score_threshold:g}): {scores.recall_at_threshold:.4f}   "
          f"AP@IoU0.5: {scores.average_precision:.4f}")
    print("recall by subset: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.recall_by_subset.items()))
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    return 0
