"""``ims-opt train fatigue``: the recipe reproduces a working model (small run), and KSS-labelled drives work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from ims_runtime.spec.schema import FatigueStageSpec
from ims_runtime.stages.fatigue import FatigueClassifier
from ims_runtime.toolchain.cli import main as ims_opt
from ims_runtime.toolchain.fatigue.generator import GeneratorConfig, generate

REPO = Path(__file__).resolve().parents[2]


def _recipe(tmp_path: Path, **extra) -> Path:
    recipe = tmp_path / "deploy" / "recipes" / "fatigue.yaml"
    recipe.parent.mkdir(parents=True, exist_ok=True)
    lines = ["out: models/fatigue_small.onnx", "seed: 7", "train_sequences: 120", "heldout_sequences: 30",
             "epochs: 1", "batch_size: 32", "width: 8"] + [f"{k}: {v}" for k, v in extra.items()]
    recipe.write_text("\n".join(lines) + "\n")
    return recipe


@pytest.mark.slow
def test_small_recipe_trains_exports_and_records(tmp_path):
    recipe = _recipe(tmp_path)
    assert ims_opt(["train", "fatigue", "--recipe", str(recipe)]) == 0
    out = tmp_path / "models" / "fatigue_small.onnx"
    entry = json.loads((out.parent / "manifest.json").read_text())["fatigue_small.onnx"]
    assert entry["seed"] == 7 and "level_agreement_model_vs_rules" in entry["metrics_heldout"]
    classifier = FatigueClassifier.from_spec(FatigueStageSpec(model=str(out)))
    est = classifier.estimate(np.zeros((1200, 2), np.float32), np.ones(1200, bool))
    assert 1.0 <= est.kss_equivalent <= 9.0


def test_training_is_reproducible(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    shas = []
    for folder in (first, second):
        recipe = _recipe(folder)
        ims_opt(["train", "fatigue", "--recipe", str(recipe)])
        shas.append(json.loads((folder / "models" / "manifest.json").read_text())["fatigue_small.onnx"]["sha256"])
    assert shas[0] == shas[1]


def test_kss_labelled_drives_train_with_the_same_command(tmp_path):
    """The OEM path: policy-replay signal files plus a JSON index of KSS reports."""
    rng = np.random.default_rng(3)
    drives = tmp_path / "deploy" / "recipes" / "drives"
    drives.mkdir(parents=True)
    index = []
    for number, kss in enumerate([2, 3, 5, 7, 8, 9, 4, 8, 6, 9]):
        seq = generate(rng, kss, GeneratorConfig(duration_s=62))
        lines = [json.dumps({"t_ns": int(t), "face_present": not np.isnan(o),
                             **({} if np.isnan(o) else {"left_open": float(o), "right_open": float(o)})})
                 for t, o in zip(seq.t_ns, seq.openness)]
        (drives / f"drive{number}.jsonl").write_text("\n".join(lines) + "\n")
        index.append({"signals": f"drive{number}.jsonl", "t_ns": int(seq.t_ns[-1]), "kss": kss})
    (drives / "index.json").write_text(json.dumps(index))
    recipe = _recipe(tmp_path, labelled_drives="drives/index.json")
    assert ims_opt(["train", "fatigue", "--recipe", str(recipe)]) == 0
    entry = json.loads((tmp_path / "models" / "manifest.json").read_text())["fatigue_small.onnx"]
    assert "KSS-labelled drives" in entry["training_data"]
