"""``ims-opt run RECIPE``: build every variant of a recipe, evaluate it on held-apart data, benchmark them together.

Step skipping: each artefact has a stamp file (``<artefact>.stamp.json``) holding a key = sha256 of everything
that determines it (the recipe section that makes it, the input weights' sha256, the calibration data description
and the clips' sha256). A step whose key is unchanged and whose output exists is skipped; evaluation results are
stamped by the artefact's sha256 and the evaluation section. Benchmarks are never skipped: speed is only
comparable within one run, so every ``run`` re-times every variant against FP32 in the same process.

Outputs (cache ``$IMS_CACHE_DIR/opt/<recipe>/``): the ``.onnx`` variants, ``results.json`` (everything the report
needs) and a record per artefact in the cache's ``manifest.json``.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ims_runtime import errors, paths
from ims_runtime.toolchain import quantize as q
from ims_runtime.toolchain.benchmark import benchmark
from ims_runtime.toolchain.calibration import (
    FrameSample,
    check_disjoint,
    letterboxed_tensors,
    sample_frames,
)
from ims_runtime.toolchain.evaluate import agreement_with_reference, wider_scores
from ims_runtime.toolchain.manifest import atomic_write_bytes, record
from ims_runtime.toolchain.onnx_stats import model_stats
from ims_runtime.toolchain.quantize_qnn import shared_dir
from ims_runtime.toolchain.recipe import Recipe, VariantSpec


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class Stamps:
    """``<path>.stamp.json`` next to each output, holding the key it was built from."""

    @staticmethod
    def fresh(path: Path, key: str) -> bool:
        stamp = path.with_name(path.name + ".stamp.json")
        return path.exists() and stamp.is_file() and json.loads(stamp.read_text()).get("key") == key

    @staticmethod
    def write(path: Path, key: str, **extra: Any) -> None:
        stamp = path.with_name(path.name + ".stamp.json")
        atomic_write_bytes(stamp, json.dumps({"key": key, **extra}, indent=2, default=str).encode())


def say(message: str) -> None:
    print(message, flush=True)


class RecipeRun:
    """One ``ims-opt run``; attributes are filled lazily so skipped steps cost nothing."""

    def __init__(self, recipe: Recipe, recipe_path: Path, out_dir: Path | None = None) -> None:
        self.recipe = recipe
        self.recipe_path = recipe_path
        self.out = out_dir or paths.cache_dir() / "opt" / recipe.name
        self.out.mkdir(parents=True, exist_ok=True)
        videos = shared_dir() / "data" / "videos"
        self.calibration = FrameSample(tuple(videos / c for c in recipe.calibration.clips), recipe.calibration.every_s)
        self.agreement = FrameSample(tuple(videos / c for c in recipe.evaluation.agreement_clips),
                                     recipe.evaluation.every_s)
        check_disjoint(self.calibration.clips, self.agreement.clips)
        for clip in (*self.calibration.clips, *self.agreement.clips):
            if not clip.is_file():
                raise errors.IMSError(errors.SOURCE_NOT_FOUND, f"recipe clip {clip} does not exist",
                                      "set IMS_SHARED_DIR to the shared folder")
        self.data_key = _key(self.calibration.describe(), [paths.sha256_file(c) for c in self.calibration.clips],
                             list(recipe.input_size_px))
        self._cal: np.ndarray | None = None
        self._agreement_frames: list[np.ndarray] | None = None
        self.results: dict[str, dict[str, Any]] = {}
        self.skipped: list[str] = []

    # ---- data -------------------------------------------------------------------------------------------------
    @property
    def calibration_tensors(self) -> np.ndarray:
        if self._cal is None:
            self._cal = letterboxed_tensors(self.calibration, self.recipe.input_size_px)
            say(f"  calibration: {len(self._cal)} frames from {', '.join(c.name for c in self.calibration.clips)}")
        return self._cal

    @property
    def agreement_frames(self) -> list[np.ndarray]:
        if self._agreement_frames is None:
            self._agreement_frames = [image for _, _, image in sample_frames(self.agreement)]
        return self._agreement_frames

    def artefact(self, name: str) -> Path:
        return self.out / f"{self.recipe.name}_{name}.onnx"

    # ---- bases ------------------------------------------------------------------------------------------------
    def base_weights(self, base_name: str) -> Path:
        from ims_runtime.toolchain.bases import ensure_base_weights

        return ensure_base_weights(self, base_name)

    def float_model(self, base_name: str) -> Path:
        """The base exported to ONNX at the recipe's static input size, then ORT-pre-processed for quantisation."""
        from ims_runtime.toolchain.bases import export_base

        weights = self.base_weights(base_name)
        out = self.out / f"{self.recipe.name}_{base_name}_float.onnx"
        key = _key("float", base_name, self.recipe.bases[base_name].model_dump(), paths.sha256_file(weights),
                   list(self.recipe.input_size_px))
        if not Stamps.fresh(out, key):
            export_base(self.recipe.bases[base_name], weights, out, self.recipe.input_size_px)
            Stamps.write(out, key)
        return out

    def preprocessed(self, base_name: str) -> Path:
        float_path = self.float_model(base_name)
        out = float_path.with_name(float_path.stem + "_pre.onnx")
        key = _key("pre", paths.sha256_file(float_path))
        if not Stamps.fresh(out, key):
            q.preprocess(float_path, out)
            Stamps.write(out, key)
        return out

    # ---- variants ---------------------------------------------------------------------------------------------
    def build(self, variant: VariantSpec) -> tuple[Path, dict[str, Any]]:
        from ims_runtime.toolchain import variants

        out = self.artefact(variant.name)
        base_key = paths.sha256_file(self.base_weights(variant.base))
        key = _key("variant", variant.model_dump(), base_key, self.data_key, self.recipe.max_accuracy_drop,
                   self.recipe.evaluation.model_dump() if variant.kind == "mixed" else None)
        if Stamps.fresh(out, key):
            self.skipped.append(f"build {variant.name}")
            stamp = json.loads(out.with_name(out.name + ".stamp.json").read_text())
            return out, stamp.get("facts", {})
        started = time.monotonic()
        facts = variants.build_variant(self, variant, out)
        facts["build_s"] = round(time.monotonic() - started, 1)
        Stamps.write(out, key, facts=facts)
        return out, facts

    def evaluate(self, variant: VariantSpec, model: Path) -> dict[str, Any]:
        reference = self.artefact("fp32")
        cache = model.with_name(model.name + ".eval.json")
        key = _key("eval", paths.sha256_file(model), paths.sha256_file(reference),
                   self.recipe.evaluation.model_dump(), list(self.recipe.input_size_px))
        if Stamps.fresh(cache, key):
            self.skipped.append(f"evaluate {variant.name}")
            return json.loads(cache.read_text())
        ev = self.recipe.evaluation
        result: dict[str, Any] = {}
        if ev.wider:
            result["wider"] = wider_scores(model, self.recipe.input_size_px, shared_dir() / "data" / ev.wider,
                                           ev.min_height_px, ev.operating_threshold)
        result["agreement"] = agreement_with_reference(model, reference, self.agreement_frames,
                                                       self.recipe.input_size_px, ev.operating_threshold)
        atomic_write_bytes(cache, json.dumps(result, indent=2).encode())
        Stamps.write(cache, key)
        return result

    def within_limit(self, scores: dict[str, Any], reference: dict[str, Any]) -> bool:
        """Absolute drops of WIDER AP and recall both within ``max_accuracy_drop``."""
        limit = self.recipe.max_accuracy_drop
        w, r = scores["wider"], reference["wider"]
        return (r["ap"] - w["ap"]) <= limit and (r["recall"] - w["recall"]) <= limit

    def run(self, only: list[str] | None = None) -> dict[str, Any]:
        recipe = self.recipe
        chosen = [v for v in recipe.variants if not only or v.name in only or v.name == "fp32"]
        if not any(v.name == "fp32" and v.kind == "fp32" for v in chosen):
            raise errors.IMSError(errors.SPEC_INVALID, "a recipe needs an fp32 variant (the yardstick)",
                                  "add `- {name: fp32, kind: fp32}` to variants")
        chosen.sort(key=lambda v: v.name != "fp32")  # the reference first: every other evaluation needs it
        models: dict[str, Path] = {}
        for index, variant in enumerate(chosen, 1):
            say(f"[{index}/{len(chosen)}] {variant.name} ({variant.kind}, base {variant.base})")
            model, facts = self.build(variant)
            scores = self.evaluate(variant, model)
            models[variant.name] = model
            stats = model_stats(model)
            if not stats["macs"]:  # 16-bit Q/DQ (com.microsoft domain) stops ONNX shape inference: same network
                stats["macs"] = model_stats(self.float_model(variant.base))["macs"]
            self.results[variant.name] = {"kind": variant.kind, "base": variant.base, "file": model.name,
                                          "sha256": paths.sha256_file(model), "facts": facts, **scores, **stats}
            w = scores.get("wider", {})
            say(f"    AP {w.get('ap', float('nan')):.4f} recall {w.get('recall', float('nan')):.4f} "
                f"found {scores['agreement']['found_share']:.3f} of FP32 faces, "
                f"box IoU {scores['agreement']['mean_box_iou']:.3f}")
        reference = self.results["fp32"]
        for name, result in self.results.items():
            result["within_limit"] = self.within_limit(result, reference) if "wider" in result else None
            result["ap_delta"] = result["wider"]["ap"] - reference["wider"]["ap"]
            result["recall_delta"] = result["wider"]["recall"] - reference["wider"]["recall"]
        say(f"benchmark: {len(models)} variants, ONNX Runtime CPU, {recipe.benchmark.threads} thread(s), "
            f"{recipe.benchmark.runs} runs each, interleaved")
        timings = benchmark(models, self.calibration_tensors[:1], runs=recipe.benchmark.runs,
                            rounds=recipe.benchmark.rounds, threads=recipe.benchmark.threads)
        base_ms = timings["fp32"].p50_ms
        for name, latency in timings.items():
            self.results[name]["latency"] = latency.to_dict()
            self.results[name]["speedup_p50"] = base_ms / latency.p50_ms
            self.results[name]["size_ratio"] = self.results[name]["size_bytes"] / reference["size_bytes"]
        summary = {"recipe": recipe.model_dump(mode="json"), "recipe_file": str(self.recipe_path),
                   "calibration": self.calibration.describe(), "agreement_data": self.agreement.describe(),
                   "variants": self.results, "skipped": self.skipped, "deploy": recipe.deploy,
                   "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "cpu": _cpu_name()}
        atomic_write_bytes(self.out / "results.json", json.dumps(summary, indent=2, default=str).encode())
        for name, model in models.items():
            result = self.results[name]
            record(paths.cache_dir() / "manifest.json", model, recipe=f"ims-opt run {self.recipe_path.name}",
                   variant=name, data={"calibration": self.calibration.describe(),
                                       "evaluation": self.agreement.describe(), "wider": recipe.evaluation.wider},
                   metrics={"ap": result["wider"]["ap"], "recall": result["wider"]["recall"],
                            "found_share": result["agreement"]["found_share"],
                            "p50_ms": result["latency"]["p50_ms"], "speedup_p50": result["speedup_p50"]})
        _print_table(self.results)
        return summary


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _print_table(results: dict[str, dict[str, Any]]) -> None:
    say(f"{'variant':22s} {'size kB':>8s} {'p50 ms':>7s} {'x FP32':>6s} {'AP':>7s} {'dAP':>7s} {'recall':>7s} "
        f"{'within':>6s}")
    for name, r in results.items():
        say(f"{name:22s} {r['size_bytes'] / 1024:8.0f} {r['latency']['p50_ms']:7.2f} {r['speedup_p50']:6.2f} "
            f"{r['wider']['ap']:7.4f} {r['ap_delta']:+7.4f} {r['wider']['recall']:7.4f} {r['within_limit']!s:>6s}")

