"""``ims-opt report``: the comparison table (Markdown) and plots (PNG) from each recipe's ``results.json``.

Everything shown was measured by ``ims-opt run`` in one run per recipe: latencies of all variants were taken in
the same process, interleaved, against that run's FP32. Verdicts on the article's claims are computed from the
numbers, not written by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ims_runtime import paths
from ims_runtime.toolchain.families import adapter_for

CLAIMS = ("2-4x faster", "75 % smaller", "< 1 % accuracy loss")


def load_results(names: list[str]) -> dict[str, dict[str, Any]]:
    root = paths.cache_dir() / "opt"
    found = sorted(p.parent.name for p in root.glob("*/results.json")) if root.is_dir() else []
    return {name: json.loads((root / name / "results.json").read_text()) for name in (names or found)
            if (root / name / "results.json").is_file()}


def _headline(summary: dict[str, Any], r: dict[str, Any]) -> dict[str, float]:
    """The variant's accuracy figures (results written before the adapters existed have none stored)."""
    return r.get("headline") or adapter_for(summary["recipe"]["model"]).headline(r, summary["variants"]["fp32"])


def _row(name: str, r: dict[str, Any], summary: dict[str, Any]) -> str:
    lat = r["latency"]
    mark = " **(deployed)**" if name == summary.get("deploy") else ""
    within = {True: "yes", False: "no", None: "-"}[r["within_limit"]]
    figures = _headline(summary, r)
    accuracy = " | ".join(fmt.format(**figures) for _, _, fmt in adapter_for(summary["recipe"]["model"]).columns)
    return (f"| {name}{mark} | {r['size_bytes'] / 1024:.0f} ({r['size_ratio'] * 100:.0f} %) | {r['params'] / 1e3:.1f} k "
            f"| {r['macs'] / 1e6:.1f} M | {lat['p50_ms']:.3f} / {lat['p99_ms']:.3f} | {r['speedup_p50']:.2f}x "
            f"| {lat['session_rss_mb']:.1f} | {accuracy} | {within} |")


def _limit_text(recipe: dict[str, Any]) -> str:
    if recipe["model"] == "retinaface":
        return f"≤ {recipe['max_accuracy_drop'] * 100:g} point AP and recall drop on WIDER"
    limits = {k: v for k, v in (recipe.get("limits") or {}).items() if v is not None}
    return "vs FP32 on held-apart data: " + ", ".join(f"{k} {'≥' if 'agreement' in k else '≤'} {v:g}"
                                                      for k, v in limits.items())


def verdicts(summary: dict[str, Any]) -> list[str]:
    variants = summary["variants"]
    int8 = {n: r for n, r in variants.items() if r["kind"] in ("ptq", "mixed", "qat", "dynamic")}
    if not int8:
        return ["no INT8 variants in this run"]
    # a claim holds only if a variant that keeps the accuracy limit reaches it; the best regardless of accuracy
    # is shown too, because "fast/small but wrong" is exactly the trap the article's claims invite
    best_speed = max(int8.items(), key=lambda kv: kv[1]["speedup_p50"])
    smallest = min(int8.items(), key=lambda kv: kv[1]["size_ratio"])
    held = [n for n, r in int8.items() if r["within_limit"]]
    fastest_held = max(held, key=lambda n: int8[n]["speedup_p50"]) if held else None
    smallest_held = min(held, key=lambda n: int8[n]["size_ratio"]) if held else None
    speed = f"- **{CLAIMS[0]}**: "
    if fastest_held:
        x = int8[fastest_held]["speedup_p50"]
        speed += (f"fastest INT8 within the accuracy limit: {fastest_held} at {x:.2f}x p50 on one CPU thread; "
                  + ("holds." if x >= 2 else "does not hold here."))
    else:
        speed += "no INT8 variant stays within the accuracy limit: does not hold."
    speed += f" (Fastest INT8 at any accuracy: {best_speed[0]} at {best_speed[1]['speedup_p50']:.2f}x.)"
    size = f"- **{CLAIMS[1]}**: "
    if smallest_held:
        ratio = int8[smallest_held]["size_ratio"]
        size += (f"smallest INT8 file within the accuracy limit: {smallest_held} at {ratio * 100:.1f} % of FP32 "
                 f"({(1 - ratio) * 100:.0f} % smaller); "
                 + ("holds." if ratio <= 0.25 else "does not hold: per-channel scales, biases, float layers and "
                    "the graph itself do not shrink."))
    else:
        size += "no INT8 variant stays within the accuracy limit: does not hold."
    size += (f" (Smallest INT8 at any accuracy: {smallest[0]} at {smallest[1]['size_ratio'] * 100:.0f} % of "
             "FP32.)")
    lines = [speed, size,
             (f"- **{CLAIMS[2]}** (here: {_limit_text(summary['recipe'])}): "
              f"{len(held)} of {len(int8)} INT8 variants hold it ({', '.join(held) or 'none'}).")]
    return lines


def _plots(name: str, summary: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = summary["variants"]
    names = list(variants)
    files = []
    if summary["recipe"]["model"] != "retinaface":
        return files + _size_speed_plot(name, variants, names, out, plt)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for n in names:
        r = variants[n]
        ax.scatter(r["latency"]["p50_ms"], r["wider"]["ap"], s=20 + r["size_bytes"] / 2e4,
                   color="tab:green" if r["within_limit"] else "tab:red")
        ax.annotate(n, (r["latency"]["p50_ms"], r["wider"]["ap"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ref = variants["fp32"]["wider"]["ap"]
    ax.axhline(ref - summary["recipe"]["max_accuracy_drop"], color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("ORT CPU latency p50, 1 thread (ms)")
    ax.set_ylabel("WIDER subset AP@0.5")
    ax.set_title(f"{name}: accuracy vs latency (green: within limit; dot area ~ file size)")
    fig.tight_layout()
    path = out / f"{name}_ap_vs_latency.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    files.append(path.name)
    return files + _size_speed_plot(name, variants, names, out, plt)


def _size_speed_plot(name: str, variants: dict[str, Any], names: list[str], out: Path, plt: Any) -> list[str]:
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    axes[0].barh(names, [variants[n]["size_bytes"] / 1024 for n in names], color="tab:blue")
    axes[0].set_xlabel("file size (KiB)")
    axes[1].barh(names, [variants[n]["speedup_p50"] for n in names], color="tab:orange")
    axes[1].axvline(1.0, color="grey", linewidth=0.8)
    axes[1].set_xlabel("speed-up vs FP32 (p50)")
    axes[1].set_yticklabels([])
    fig.tight_layout()
    path = out / f"{name}_size_speed.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path.name]


def write_report(out: Path, names: list[str] | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    results = load_results(names or [])
    lines = ["# Optimisation report", "",
             ("Generated by `ims-opt report` from the latest `ims-opt run` of each recipe. Latency: ONNX Runtime CPU, "
             "one thread, all variants timed interleaved in the same run (p50 / p99 ms). Memory: resident-set growth "
             "when the session loads and warms up (MB). Params: Conv/Gemm weights and biases; MACs: convolutions, "
             "batch 1. Accuracy, detector: WIDER subset (held-apart; evaluation only; with the recipe's "
             "`evaluation.wider_split` only its report part, images the mixed-precision search never saw) AP@0.5 "
             "and recall at the operating threshold with the delta vs FP32 in percentage points; agreement with "
             "FP32 on frames of a clip never calibrated or trained on: share of FP32 faces found / mean box IoU / "
             "mean landmark error (px). Face-state: agreement with FP32 on every face of the held-apart clip "
             "(gaze angular error, head yaw/pitch/roll MAE, eye open/closed agreement and openness MAE). Fatigue: "
             "level and KSS agreement with FP32 on held-apart generated sequences, level accuracy vs the "
             "generator's truth."), ""]
    if not results:
        lines.append("No results yet: run `ims-opt run deploy/recipes/<model>.yaml` first.")
    for name, summary in results.items():
        recipe = summary["recipe"]
        data = summary.get("data") or {"calibration": summary.get("calibration"),
                                       "evaluation": summary.get("agreement_data")}
        if "sequences" in data:
            seq = data["sequences"]
            data_text = (f"Calibration: {seq['calibration_count']} generated sequences (seed {seq['calibration_seed']});"
                         f" held apart: {seq['heldout_count']} (seed {seq['heldout_seed']})")
        else:
            cal, ev = data["calibration"], data["evaluation"]
            data_text = (f"Calibration: {', '.join(cal['clips'])} every {cal['every_s']} s; agreement: "
                         f"{', '.join(ev['clips'])} every {ev['every_s']} s")
        headers = " | ".join(h for h, _, _ in adapter_for(recipe["model"]).columns)
        lines += [(f"## {name} ({recipe['model']}, target {recipe['target']}, input "
                  f"{recipe['input_size_px'][0]}x{recipe['input_size_px'][1]})"), "",
                  (f"Measured {summary['measured_utc']} on {summary['cpu']}. {data_text}. "
                   f"Limit: {_limit_text(recipe)}."), "",
                  (f"| variant | size KiB (vs FP32) | params | MACs | p50 / p99 ms | speed-up | RSS MB | {headers} "
                   "| within limit |"),
                  "|---|---|---|---|---|---|---|" + "---|" * len(adapter_for(recipe["model"]).columns) + "---|"]
        lines += [_row(n, r, summary) for n, r in summary["variants"].items()]
        lines += ["", ("Notes: `qnn_*` variants are built for the QNN HTP (16-bit activations and 4-bit weights are "
                  "HTP features); ONNX Runtime CPU runs them through DequantizeLinear → float → QuantizeLinear, so "
                  "their CPU latency says nothing about the HTP. `fp16` has no FP16 kernels on x86 CPUs (ORT inserts "
                  "casts): it is for GPU / HTP targets."), "",
                  "Verdicts on the article's claims:", "", *verdicts(summary), ""]
        for n, r in summary["variants"].items():
            kept = r.get("facts", {}).get("kept_float")
            if kept:
                lines.append(f"- {n}: kept in float: {', '.join(kept)}")
            htp = r.get("htp_placement")
            if htp and htp.get("checked"):
                where = (f"{htp['htp_nodes']} nodes on the HTP, {htp['cpu_nodes']} on CPU ({htp['device']}, QNN SDK "
                         f"{htp['qnn_sdk']})" if "refused" not in htp else f"refused: {htp['refused']}")
                lines.append(f"- {n}: QNN HTP check: {where}")
        lines.append("")
        for png in _plots(name, summary, out):
            lines += [f"![{png}]({png})", ""]
    path = out / "README.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
