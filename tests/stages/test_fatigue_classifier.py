"""The committed fatigue network: its manifest, its contract, its size, and how it compares to the rules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ims_runtime import catalog, errors, paths
from ims_runtime.backends import open_chain
from ims_runtime.backends.ort_cpu import OrtCpuConfig
from ims_runtime.spec.schema import FatigueStageSpec, FatigueWindowSpec
from ims_runtime.stages.fatigue import FatigueClassifier, level_for_kss, rule_based_kss
from ims_runtime.stages.model import OpenedModel
from ims_runtime.temporal.features import TemporalFeatures
from ims_runtime.toolchain.fatigue.generator import GeneratorConfig, generate, sample_kss

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module")
def classifier():
    c = FatigueClassifier.from_spec(FatigueStageSpec())
    yield c
    c.close()


def test_committed_model_matches_its_manifest_entry():
    manifest = json.loads((MODELS / "manifest.json").read_text())
    entry = manifest["fatigue_tcn.onnx"]
    assert entry["sha256"] == paths.sha256_file(MODELS / "fatigue_tcn.onnx")
    assert entry["parameters"] <= 100_000
    assert "Ingre" in " ".join(entry["sources"])
    assert catalog.resolve("fatigue_tcn") == MODELS / "fatigue_tcn.onnx"
    assert catalog.CATALOG["fatigue_tcn"].build_command is None


def test_model_carries_its_window_and_refuses_another(classifier):
    meta = classifier.backend.metadata
    assert float(meta["ims.window_s"]) == 60.0 and float(meta["ims.bin_s"]) == 0.05
    assert int(meta["ims.parameters"]) <= 100_000
    opened = open_chain(catalog.resolve("fatigue_tcn"), [OrtCpuConfig()], stage="fatigue")
    with pytest.raises(errors.IMSError) as info:
        FatigueClassifier(OpenedModel.from_backend(opened.backend), window_s=30.0, bin_s=0.05)
    assert info.value.code is errors.MODEL_CONTRACT


def _features_and_bins(seq, window: FatigueWindowSpec):
    features = TemporalFeatures(window)
    for t, value in zip(seq.t_ns.tolist(), seq.openness.tolist()):
        present = not np.isnan(value)
        features.add(t, face_present=present, eye_openness=value if present else None, mouth_open=None,
                     head_pitch_deg=None, off_road=None)
    end = int(seq.t_ns[-1])
    return features.features(end), features.eye_window(end)


def test_model_agrees_with_the_rules_on_fresh_generated_sequences(classifier):
    """Sequences from a seed used neither for training nor for the manifest's held-apart figure."""
    window = FatigueWindowSpec()
    rng = np.random.default_rng(20_260_101)
    config = GeneratorConfig(duration_s=65.0)
    agree = truth_hits = rules_hits = n = 0
    for _ in range(80):
        seq = generate(rng, sample_kss(rng), config)
        features, (bins, valid) = _features_and_bins(seq, window)
        rules = rule_based_kss(features)
        if rules is None:
            continue
        model = classifier.estimate(bins, valid).kss_equivalent
        n += 1
        agree += level_for_kss(model) == level_for_kss(rules)
        truth_hits += level_for_kss(model) == level_for_kss(seq.kss)
        rules_hits += level_for_kss(rules) == level_for_kss(seq.kss)
    assert n >= 70
    assert agree / n >= 0.6, f"model/rules level agreement {agree / n:.2f}"
    assert truth_hits / n >= rules_hits / n - 0.1, "the model should not be clearly worse than the rules"


def test_estimate_rises_with_perclos(classifier):
    n_bins = classifier.n_bins
    estimates = []
    for closed_share in (0.0, 0.1, 0.2, 0.3):
        bins = np.zeros((n_bins, 2), dtype=np.float32)
        period = 60  # 3 s of 50 ms bins
        closed = (np.arange(n_bins) % period) < round(closed_share * period)
        bins[:, 0] = np.where(closed, 0.05, 0.9)
        bins[:, 1] = closed
        estimates.append(classifier.estimate(bins, np.ones(n_bins, bool)).kss_equivalent)
    assert estimates == sorted(estimates) and estimates[0] < 6.5 and estimates[-1] >= 7.5


def test_runtime_path_does_not_import_torch_or_the_toolchain():
    code = ("import sys, ims_runtime.pipeline.monitor, ims_runtime.commands.policy_replay, "
            "ims_runtime.pipeline.vehicle_speed; "
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith('ims_runtime.toolchain')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
