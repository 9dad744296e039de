"""``ims-opt train fatigue --recipe deploy/recipes/fatigue.yaml``: data → training → held-apart evaluation →
ONNX export → manifest record.

Data: by default sequences from :mod:`.generator` (seeded; a separate seed stream gives the held-apart set).
With ``labelled_drives`` set, windows cut from real KSS-labelled drives are used instead (see
:func:`load_labelled_drives` for the format) — the same command, the same network, the same export.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ims_runtime.spec.schema import FatigueWindowSpec
from ims_runtime.stages.fatigue import LEVELS, level_for_kss, rule_based_kss
from ims_runtime.temporal.features import TemporalFeatures
from ims_runtime.temporal.ring import bin_series
from ims_runtime.temporal.signals import FrameSignals
from ims_runtime.toolchain.fatigue.generator import (
    GeneratorConfig,
    Sequence,
    generate,
    level_index,
    sample_kss,
)
from ims_runtime.toolchain.fatigue.model import FatigueTCN, count_parameters


class FatigueRecipe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    out: str = Field("models/fatigue_tcn.onnx", description="ONNX file to write (relative to the recipe's repo)")
    seed: int = 1234
    threads: int = Field(1, ge=1, le=64, description="torch intra-op threads")
    train_sequences: int = Field(6000, ge=10)
    heldout_sequences: int = Field(800, ge=10, description="generated with another seed, never trained on")
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(3e-3, gt=0)
    width: int = Field(32, ge=4, le=256, description="channels of the network")
    window: FatigueWindowSpec = Field(default_factory=FatigueWindowSpec)
    labelled_drives: str | None = Field(None, description="JSON index of KSS-labelled drives (replaces the "
                                        "generator), relative to the recipe file")


def load_recipe(path: Path) -> FatigueRecipe:
    return FatigueRecipe.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})


def sequence_input(t_ns: np.ndarray, openness: np.ndarray, window: FatigueWindowSpec) -> np.ndarray:
    """Frames → the network input ``(3, n_bins)`` ending at the last frame, exactly as the runtime bins them."""
    measured = ~np.isnan(openness)
    values = np.stack([openness[measured], (openness[measured] < window.closed_below).astype(np.float64)], 1)
    means, valid = bin_series(t_ns[measured], values, int(t_ns[-1]), window.window_s, window.bin_s)
    return np.concatenate([means.T, valid[None].astype(np.float32)], 0)


def rule_kss_of(t_ns: np.ndarray, openness: np.ndarray, window: FatigueWindowSpec) -> float | None:
    """The rule-based estimate at the last frame, through the runtime's own incremental feature code."""
    features = TemporalFeatures(window)
    for t, value in zip(t_ns.tolist(), openness.tolist()):
        present = not math.isnan(value)  # NaN = face lost
        features.add(t, face_present=present, eye_openness=value if present else None, mouth_open=None,
                     head_pitch_deg=None, off_road=None)
    return rule_based_kss(features.features(int(t_ns[-1])))


def generated(n: int, seed: int, window: FatigueWindowSpec) -> tuple[list[Sequence], np.ndarray]:
    rng = np.random.default_rng(seed)
    config = GeneratorConfig(duration_s=window.window_s + 5.0)
    sequences = [generate(rng, sample_kss(rng), config) for _ in range(n)]
    x = np.stack([sequence_input(s.t_ns, s.openness, window) for s in sequences])
    return sequences, x


def load_labelled_drives(index_path: Path, window: FatigueWindowSpec) -> tuple[list[Sequence], np.ndarray]:
    """KSS-labelled drives → training windows.

    ``index_path`` is a JSON list of ``{"signals": "drive01.jsonl", "t_ns": <time of the KSS report>, "kss": 7}``
    (paths relative to the index). Each ``signals`` file has the policy-replay line format; the window is the
    ``window_s`` before each report.
    """
    entries = json.loads(index_path.read_text(encoding="utf-8"))
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    sequences = []
    for entry in entries:
        name = entry["signals"]
        if name not in cache:
            frames = [FrameSignals.from_dict(json.loads(line))
                      for line in (index_path.parent / name).read_text(encoding="utf-8").splitlines() if line]
            t = np.array([f.t_ns for f in frames], dtype=np.int64)
            o = np.array([np.nan if f.eye_openness is None else f.eye_openness for f in frames], np.float32)
            cache[name] = (t, o)
        t, o = cache[name]
        end = int(entry["t_ns"])
        pick = (t > end - int(window.window_s * 1e9)) & (t <= end)
        sequences.append(Sequence(t_ns=t[pick], openness=o[pick], kss=float(entry["kss"]), fps=float("nan")))
    x = np.stack([sequence_input(s.t_ns, s.openness, window) for s in sequences])
    return sequences, x


def _train(model: nn.Module, x: np.ndarray, kss: np.ndarray, levels: np.ndarray, recipe: FatigueRecipe,
           log: Any) -> None:
    gen = torch.Generator().manual_seed(recipe.seed)
    xt, kt, lt = torch.from_numpy(x), torch.from_numpy(kss[:, None]), torch.from_numpy(levels)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=1e-4)
    steps = recipe.epochs * ((len(x) + recipe.batch_size - 1) // recipe.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.learning_rate, total_steps=steps)
    ce = nn.CrossEntropyLoss()
    for epoch in range(recipe.epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for start in range(0, len(x), recipe.batch_size):
            idx = order[start:start + recipe.batch_size]
            pred_kss, logits = model(xt[idx])
            loss = nn.functional.smooth_l1_loss(pred_kss, kt[idx]) + ce(logits, lt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        log(f"epoch {epoch + 1}/{recipe.epochs}: loss {total / len(x):.4f}")


def evaluate(model: nn.Module, sequences: list[Sequence], x: np.ndarray,
             window: FatigueWindowSpec) -> dict[str, Any]:
    """Model vs rules vs the generator's truth on held-apart sequences (levels via the runtime's boundaries)."""
    model.eval()
    with torch.no_grad():
        pred_kss = model(torch.from_numpy(x))[0][:, 0].numpy().astype(np.float64)
    truth = np.array([s.kss for s in sequences])
    rules = [rule_kss_of(s.t_ns, s.openness, window) for s in sequences]
    has_rules = np.array([r is not None for r in rules])
    rules_kss = np.array([r if r is not None else np.nan for r in rules])
    lv = np.vectorize(lambda k: LEVELS.index(level_for_kss(k)))
    model_lv, truth_lv = lv(pred_kss), lv(truth)
    rules_lv = np.where(has_rules, lv(np.nan_to_num(rules_kss, nan=1.0)), -1)
    m = has_rules
    return {
        "heldout_sequences": len(sequences),
        "with_rule_estimate": int(m.sum()),
        "level_agreement_model_vs_rules": round(float((model_lv[m] == rules_lv[m]).mean()), 4),
        "level_accuracy_model": round(float((model_lv == truth_lv).mean()), 4),
        "level_accuracy_rules": round(float((rules_lv[m] == truth_lv[m]).mean()), 4),
        "kss_mae_model": round(float(np.abs(pred_kss - truth).mean()), 3),
        "kss_mae_rules": round(float(np.abs(rules_kss[m] - truth[m]).mean()), 3),
        "kss_mae_model_vs_rules": round(float(np.abs(pred_kss[m] - rules_kss[m]).mean()), 3),
        "warn_agreement_kss7_model_vs_rules": round(float(((pred_kss[m] >= 7) == (rules_kss[m] >= 7)).mean()), 4),
    }


def train_fatigue(recipe_path: Path, out_override: Path | None = None, log: Any = print) -> dict[str, Any]:
    from ims_runtime.toolchain.export import export_onnx
    from ims_runtime.toolchain.manifest import record

    recipe = load_recipe(recipe_path)
    repo = recipe_path.resolve().parent.parent.parent  # deploy/recipes/x.yaml → repo root
    out = out_override or (repo / recipe.out)
    torch.manual_seed(recipe.seed)
    torch.set_num_threads(recipe.threads)
    window = recipe.window
    started = time.perf_counter()
    if recipe.labelled_drives:
        sequences, x = load_labelled_drives(recipe_path.parent / recipe.labelled_drives, window)
        split = np.random.default_rng(recipe.seed).random(len(sequences)) < 0.8
        train_seq = [s for s, k in zip(sequences, split) if k]
        held_seq = [s for s, k in zip(sequences, split) if not k]
        x_train, x_held = x[split], x[~split]
        data_desc = f"KSS-labelled drives from {recipe.labelled_drives}"
    else:
        train_seq, x_train = generated(recipe.train_sequences, recipe.seed, window)
        held_seq, x_held = generated(recipe.heldout_sequences, recipe.seed + 1_000_003, window)
        data_desc = "ims_runtime.toolchain.fatigue.generator (cited KSS relationships; seeded)"
    log(f"data: {len(train_seq)} train / {len(held_seq)} held-apart windows "
        f"({time.perf_counter() - started:.1f} s)")
    model = FatigueTCN(recipe.width)
    kss = np.array([s.kss for s in train_seq], dtype=np.float32)
    levels = np.array([level_index(s.kss) for s in train_seq], dtype=np.int64)
    _train(model, x_train, kss, levels, recipe, log)
    metrics = evaluate(model, held_seq, x_held, window)
    params = count_parameters(model)
    log(f"held-apart: {json.dumps(metrics)}; parameters {params}")
    n_bins = round(window.window_s / window.bin_s)
    meta = {
        "ims.model_family": "fatigue_tcn",
        "ims.input_layout": "N,C=3 (openness, closed fraction, valid),T bins oldest first",
        "ims.window_s": repr(window.window_s),
        "ims.bin_s": repr(window.bin_s),
        "ims.closed_below": repr(window.closed_below),
        "ims.outputs": "kss: KSS-equivalent 1..9 (N,1); level_logits: alert, drowsy, severe (N,3)",
        "ims.training_data": data_desc,
        "ims.parameters": str(params),
    }
    export_onnx(model, torch.zeros(1, 3, n_bins), out, input_name="eye_bins", output_names=["kss", "level_logits"],
                dynamic_axes={"eye_bins": {0: "batch"}, "kss": {0: "batch"}, "level_logits": {0: "batch"}},
                metadata=meta)
    entry = record(out.parent / "manifest.json", out, recipe=f"ims-opt train fatigue --recipe {recipe_path.name}",
                   how_made="trained by the project's own code (ims_runtime/toolchain/fatigue)",
                   training_data=data_desc,
                   sources=["Åkerstedt & Gillberg 1990 (KSS)", "Ingre et al. 2006 (blink duration vs KSS)",
                            "Schleicher et al. 2008", "Caffier et al. 2003", "Stern et al. 1994 (blink rate)",
                            "Wierwille et al. 1994; Dinges & Grace 1998 (PERCLOS)"],
                   preprocessing=f"eye openness binned in {window.bin_s} s bins over {window.window_s} s: "
                                 f"(mean openness, closed fraction at < {window.closed_below}, valid)",
                   input_shape=[1, 3, n_bins], precision="fp32", parameters=params, seed=recipe.seed,
                   train_seconds=round(time.perf_counter() - started, 1), metrics_heldout=metrics)
    log(f"wrote {out} ({entry['size_bytes']} B, sha256 {entry['sha256']})")
    return entry
