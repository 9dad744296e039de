"""The search / report split of the WIDER subset: deterministic, by file name, disjoint, and wired into the
toolchain (the mixed-precision search decides on one part, the report quotes the other)."""

import json

import pytest
from conftest import cli, shared

from ims_runtime.eval.data_split import HashSplit
from ims_runtime.eval.detector_eval import parse_gt


def _wider_names() -> list[str]:
    return [item.path for item in parse_gt(shared("data", "widerface_val_subset", "gt.txt"))]


def test_parts_are_disjoint_cover_everything_and_keep_the_order():
    names = _wider_names()
    split = HashSplit()
    search = split.select(names, "search", str)
    report = split.select(names, "report", str)
    assert set(search).isdisjoint(report) and len(search) + len(report) == len(names)
    assert search == [n for n in names if n in set(search)]  # original order kept
    # a hash split of 120 names at share 0.5: neither part is degenerate
    assert 0.35 * len(names) < len(search) < 0.65 * len(names)


def test_assignment_depends_on_the_file_name_only_not_on_order_folder_or_instance():
    names = _wider_names()
    first = HashSplit().select(names, "search", str)
    reordered = HashSplit().select(list(reversed(names)), "search", str)
    assert sorted(first) == sorted(reordered)
    assert all(HashSplit().part_of(f"/elsewhere/deeper/{n.rsplit('/', 1)[-1]}") == HashSplit().part_of(n)
               for n in names)


def test_another_salt_draws_another_split_and_the_share_moves_the_sizes():
    names = _wider_names()
    assert HashSplit(salt="a").select(names, "search", str) != HashSplit(salt="b").select(names, "search", str)
    small = HashSplit(search_share=0.2).select(names, "search", str)
    large = HashSplit(search_share=0.8).select(names, "search", str)
    assert len(small) < len(names) / 2 < len(large)
    assert set(small) <= set(large)  # same hash, larger threshold: a growing share only adds images


@pytest.mark.parametrize("share", [0.0, 1.0, -0.1])
def test_a_share_that_leaves_a_part_empty_is_refused(share):
    with pytest.raises(ValueError, match="search_share"):
        HashSplit(search_share=share)


def test_the_detector_recipe_splits_wider_and_the_toolchain_reads_it():
    from pathlib import Path

    from ims_runtime.toolchain.evaluate import wider_split
    from ims_runtime.toolchain.recipe import load_recipe

    recipe = load_recipe(Path(__file__).resolve().parents[2] / "deploy" / "recipes" / "detector.yaml")
    split = wider_split(recipe.evaluation)
    assert split == HashSplit(recipe.evaluation.wider_split.search_share, recipe.evaluation.wider_split.salt)


def test_eval_detector_scores_each_part_and_the_parts_add_up(tmp_path, dev_spec_path, detector_model):
    root = shared("data", "widerface_val_subset")
    names = _wider_names()
    scores = {}
    for part in ("search", "report"):
        out = tmp_path / f"{part}.json"
        result = cli("eval-detector", "--spec", str(dev_spec_path), "--set", "stages.face_detector.tracking=null",
                     "--images", str(root / "images"), "--gt", str(root / "gt.txt"), "--part", part,
                     "--json", str(out), timeout=300)
        assert result.returncode == 0, result.stderr
        scores[part] = json.loads(out.read_text())
        assert scores[part]["part"] == part
        assert scores[part]["images"] == len(HashSplit().select(names, part, str))
    assert scores["search"]["images"] + scores["report"]["images"] == len(names)
    assert scores["search"]["faces_counted"] > 100 and scores["report"]["faces_counted"] > 100


def test_the_toolchains_wider_scores_read_only_the_asked_part(detector_model):
    """What the mixed-precision search (``search``) and the report (``report``) score: only their own images."""
    pytest.importorskip("onnx")
    from ims_runtime.toolchain.evaluate import wider_scores

    root = shared("data", "widerface_val_subset")
    gt = parse_gt(root / "gt.txt")
    split = HashSplit()
    report = split.select(gt, "report", lambda item: item.path)
    heights_ok = sum(int(((g.boxes_xyxy_px[:, 3] - g.boxes_xyxy_px[:, 1]) >= 16).sum()) for g in report)
    scores = wider_scores(detector_model, (640, 384), root, 16.0, 0.6, split, "report")
    assert scores["part"] == "report" and scores["images"] == len(report) < len(gt)
    # faces counted are the report images' faces ≥ 16 px (minus invalid / ignore ones), never the search images'
    assert 0 < scores["faces_counted"] <= heights_ok
    assert 0 < scores["recall"] <= 1 and 0 < scores["ap"] <= 1
