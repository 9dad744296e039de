"""``ims-opt run RECIPE``: build every variant of a recipe, evaluate it on held-apart data, benchmark them together.

Step skipping (:mod:`.stamps`): each artefact has a stamp file (``<artefact>.stamp.json``) holding a key = sha256
of everything that determines it (the recipe section that makes it, the input weights' sha256, the calibration data
description and the clips' sha256). A step whose key is unchanged and whose output exists is skipped; evaluation
results are
stamped by the artefact's sha256 and the evaluation section. Benchmarks are never skipped: speed is only
comparable within one run, so every ``run`` re-times every variant against FP32 in the same process.

Outputs (cache ``$IMS_CACHE_DIR/opt/<recipe>/``): the ``.onnx`` variants, ``results.json`` (everything the report
needs) and a record per artefact in the cache's ``manifest.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ims_runtime import errors, paths
from ims_runtime.atomic import atomic_write_bytes
from ims_runtime.backends.qnn import CPU_EP, EP_NAME, QnnBackend, QnnConfig
from ims_runtime.toolchain import quantize as q
from ims_runtime.toolchain import variants
from ims_runtime.toolchain.benchmark import benchmark
from ims_runtime.toolchain.calibration import FrameSample, check_disjoint
from ims_runtime.toolchain.families import adapter_for
from ims_runtime.toolchain.manifest import record
from ims_runtime.toolchain.onnx_stats import model_stats
from ims_runtime.toolchain.recipe import Recipe, VariantSpec
from ims_runtime.toolchain.shared_data import videos_dir
from ims_runtime.toolchain.stamps import is_fresh, read_stamp, spec_key, stamp_key, write_stamp


def say(message: str) -> None:
    print(message, flush=True)


class RecipeRun:
    """One ``ims-opt run`` (the :class:`~.run_context.RunContext` its adapter and builders see); attributes are
    filled lazily so skipped steps cost nothing."""

    def __init__(self, recipe: Recipe, recipe_path: Path, out_dir: Path | None = None) -> None:
        self.recipe = recipe
        self.recipe_path = recipe_path
        self.out = out_dir or paths.cache_dir() / "opt" / recipe.name
        self.out.mkdir(parents=True, exist_ok=True)
        self.adapter = adapter_for(recipe.model)
        if recipe.calibration is not None and recipe.evaluation is not None:  # video data (detector, face-state)
            videos = videos_dir()
            self.calibration = FrameSample(tuple(videos / c for c in recipe.calibration.clips),
                                           recipe.calibration.every_s)
            self.agreement = FrameSample(tuple(videos / c for c in recipe.evaluation.agreement_clips),
                                         recipe.evaluation.every_s)
            check_disjoint(self.calibration.clips, self.agreement.clips)
            for clip in (*self.calibration.clips, *self.agreement.clips):
                if not clip.is_file():
                    raise errors.IMSError(errors.SOURCE_NOT_FOUND, f"recipe clip {clip} does not exist",
                                          "set IMS_SHARED_DIR to the shared folder")
            self.data_key = stamp_key(self.calibration.describe(),
                                 [paths.sha256_file(c) for c in self.calibration.clips], list(recipe.input_size_px))
        else:  # generated sequences (fatigue): the seeds and counts determine the data
            assert recipe.sequences is not None  # load_recipe checks
            self.data_key = stamp_key(recipe.sequences.model_dump())
        self._cal: np.ndarray | None = None
        self.results: dict[str, dict[str, Any]] = {}
        self.skipped: list[str] = []

    # ---- data -------------------------------------------------------------------------------------------------
    @property
    def calibration_tensors(self) -> np.ndarray:
        if self._cal is None:
            self._cal = self.adapter.calibration_tensors(self)
            say(f"  calibration: {len(self._cal)} tensors {tuple(self._cal.shape[1:])}")
        return self._cal

    def data_description(self) -> dict[str, Any]:
        return self.adapter.data_description(self)

    def _family_key(self, base_name: str) -> list[Any]:
        """Extra stamp-key parts for the non-detector families and pruned detector bases: a base made by pruning
        + distillation depends on its spec and the calibration footage (the other detector keys stay as they were,
        so their artefacts are not rebuilt)."""
        if self.recipe.model == "retinaface" and not self.recipe.bases[base_name].prune_ratio:
            return []
        return [self.recipe.bases[base_name].model_dump(), self.data_key]

    def artefact(self, name: str) -> Path:
        return self.out / f"{self.recipe.name}_{name}.onnx"

    # ---- bases ------------------------------------------------------------------------------------------------
    def base_weights(self, base_name: str) -> Path:
        return self.adapter.base_weights(self, base_name)

    def float_model(self, base_name: str) -> Path:
        """The base exported to ONNX at the recipe's static input size, then ORT-pre-processed for quantisation."""
        weights = self.base_weights(base_name)
        out = self.out / f"{self.recipe.name}_{base_name}_float.onnx"
        key = stamp_key("float", base_name, spec_key(self.recipe.bases[base_name]), paths.sha256_file(weights),
                        list(self.recipe.input_size_px), *self._family_key(base_name))
        if not is_fresh(out, key):
            self.adapter.export_float(self, base_name, weights, out)
            write_stamp(out, key)
        return out

    def preprocessed(self, base_name: str) -> Path:
        float_path = self.float_model(base_name)
        out = float_path.with_name(float_path.stem + "_pre.onnx")
        key = stamp_key("pre", paths.sha256_file(float_path))
        if not is_fresh(out, key):
            q.preprocess(float_path, out)
            write_stamp(out, key)
        return out

    # ---- variants ---------------------------------------------------------------------------------------------
    def build_qat(self, variant: VariantSpec, out: Path, meta: dict[str, object]) -> dict[str, Any]:
        """The family's QAT (:meth:`ModelAdapter.build_qat`)."""
        return self.adapter.build_qat(self, variant, out, meta)

    def build(self, variant: VariantSpec) -> tuple[Path, dict[str, Any]]:
        out = self.artefact(variant.name)
        base_key = paths.sha256_file(self.base_weights(variant.base))
        key = stamp_key("variant", variants.FINISH_VERSION, spec_key(variant), base_key, self.data_key,
                        self.recipe.max_accuracy_drop,
                        self.recipe.evaluation.model_dump() if variant.kind == "mixed" else None,
                        *self._family_key(variant.base))
        if is_fresh(out, key):
            self.skipped.append(f"build {variant.name}")
            return out, read_stamp(out).get("facts", {})
        started = time.monotonic()
        facts = variants.build_variant(self, variant, out)
        facts["build_s"] = round(time.monotonic() - started, 1)
        write_stamp(out, key, facts=facts)
        return out, facts

    def evaluate(self, variant: VariantSpec, model: Path) -> dict[str, Any]:
        reference = self.artefact("fp32")
        cache = model.with_name(model.name + ".eval.json")
        evaluation = self.recipe.evaluation or self.recipe.sequences
        key = stamp_key("eval", paths.sha256_file(model), paths.sha256_file(reference),
                        evaluation.model_dump() if evaluation else None, list(self.recipe.input_size_px))
        if is_fresh(cache, key):
            self.skipped.append(f"evaluate {variant.name}")
            return json.loads(cache.read_text())
        result = self.adapter.evaluate(self, model, reference)
        if variant.kind in ("qnn", "qat"):  # built for (or claimed to run on) the HTP: check it really places there
            result["htp_placement"] = htp_placement(model)
        atomic_write_bytes(cache, json.dumps(result, indent=2).encode())
        write_stamp(cache, key)
        return result

    def within_limit(self, scores: dict[str, Any], reference: dict[str, Any]) -> bool:
        """The family's accuracy limit against FP32 (:meth:`ModelAdapter.within_limit`)."""
        return self.adapter.within_limit(self, scores, reference)

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
            w, h = recipe.input_size_px
            stats = model_stats(model, (h, w))  # (h, w) fixes a dynamic-shape image model's size for the MACs
            if not stats["macs"]:  # 16-bit Q/DQ (com.microsoft domain) stops ONNX shape inference: same network
                stats["macs"] = model_stats(self.float_model(variant.base), (h, w))["macs"]
            self.results[variant.name] = {"kind": variant.kind, "base": variant.base, "file": model.name,
                                          "sha256": paths.sha256_file(model), "facts": facts, **scores, **stats}
            say("    " + ", ".join(f"{k} {v:.4g}" for k, v in
                                   self.adapter.headline(scores, self.results["fp32"]).items()))
        reference = self.results["fp32"]
        for name, result in self.results.items():
            result["within_limit"] = self.within_limit(result, reference)
            result["headline"] = self.adapter.headline(result, reference)
            if "wider" in result:  # kept for older report readers
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
                   "data": self.data_description(),
                   "variants": self.results, "skipped": self.skipped, "deploy": recipe.deploy,
                   "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "cpu": _cpu_name()}
        atomic_write_bytes(self.out / "results.json", json.dumps(summary, indent=2, default=str).encode())
        for name, model in models.items():
            result = self.results[name]
            record(paths.cache_dir() / "manifest.json", model, recipe=f"ims-opt run {self.recipe_path.name}",
                   variant=name, data=self.data_description(),
                   metrics={**result["headline"], "p50_ms": result["latency"]["p50_ms"],
                            "speedup_p50": result["speedup_p50"]})
        _print_table(self.results)
        return summary


def htp_placement(model: Path) -> dict[str, Any]:
    """Open ``model`` on the QNN HTP (Qualcomm's simulator on x86) with CPU fallback off: how many nodes the HTP
    takes, or why it refused. Skipped (and said so) where onnxruntime-qnn is not installed."""
    try:
        import onnxruntime_qnn  # noqa: F401
    except ImportError:
        return {"checked": False, "why": "onnxruntime-qnn not installed (pip install '.[qnn]')"}
    try:
        backend = QnnBackend(model, QnnConfig())
    except errors.IMSError as exc:
        return {"checked": True, "htp_nodes": 0, "refused": f"{exc.code.code}: {exc}"}
    try:
        counts = backend.placement.nodes_by_device
        return {"checked": True, "htp_nodes": counts.get(EP_NAME, 0), "cpu_nodes": counts.get(CPU_EP, 0),
                "device": backend.describe()["device"], "qnn_sdk": backend.sdk_version}
    finally:
        backend.close()


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _print_table(results: dict[str, dict[str, Any]]) -> None:
    say(f"{'variant':22s} {'size kB':>8s} {'p50 ms':>7s} {'x FP32':>6s} {'within':>6s}  accuracy vs FP32")
    for name, r in results.items():
        accuracy = ", ".join(f"{k} {v:.4g}" for k, v in r["headline"].items())
        say(f"{name:22s} {r['size_bytes'] / 1024:8.0f} {r['latency']['p50_ms']:7.2f} {r['speedup_p50']:6.2f} "
            f"{r['within_limit']!s:>6s}  {accuracy}")

