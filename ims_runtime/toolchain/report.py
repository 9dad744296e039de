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

CLAIMS = ("2-4x faster", "75 % smaller", "< 1 % accuracy loss")


def load_results(names: list[str]) -> dict[str, dict[str, Any]]:
    root = paths.cache_dir() / "opt"
    found = sorted(p.parent.name for p in root.glob("*/results.json")) if root.is_dir() else []
    return {name: json.loads((root / name / "results.json").read_text()) for name in (names or found)
            if (root / name / "results.json").is_file()}


def _row(name: str, r: dict[str, Any], deploy: str | None) -> str:
    w, a, lat = r["wider"], r["agreement"], r["latency"]
    mark = " **(deployed)**" if name == deploy else ""
    within = {True: "yes", False: "no", None: "-"}[r["within_limit"]]
    return (f"| {name}{mark} | {r['size_bytes'] / 1024:.0f} ({r['size_ratio'] * 100:.0f} %) | {r['params'] / 1e3:.0f} k "
            f"| {r['macs'] / 1e6:.0f} M | {lat['p50_ms']:.2f} / {lat['p99_ms']:.2f} | {r['speedup_p50']:.2f}x "
            f"| {lat['session_rss_mb']:.1f} | {w['ap']:.4f} ({r['ap_delta'] * 100:+.2f}) "
            f"| {w['recall']:.4f} ({r['recall_delta'] * 100:+.2f}) | {a['found_share']:.3f} / {a['mean_box_iou']:.3f} "
            f"/ {a['mean_landmark_error_px']:.2f} | {within} |")


def verdicts(summary: dict[str, Any]) -> list[str]:
    variants = summary["variants"]
    limit = summary["recipe"]["max_accuracy_drop"]
    int8 = {n: r for n, r in variants.items() if r["kind"] in ("ptq", "mixed", "qat", "pruned")}
    if not int8:
        return ["no INT8 variants in this run"]
    best_speed = max(int8.items(), key=lambda kv: kv[1]["speedup_p50"])
    smallest = min(int8.items(), key=lambda kv: kv[1]["size_ratio"])
    held = [n for n, r in int8.items() if r["within_limit"]]
    fastest_held = max(held, key=lambda n: int8[n]["speedup_p50"]) if held else None
    lines = [
        f"- **{CLAIMS[0]}**: best INT8 {best_speed[0]} at {best_speed[1]['speedup_p50']:.2f}x p50 on one CPU thread; "
        + ("holds." if best_speed[1]["speedup_p50"] >= 2 else "does not hold here.")
        + (f" Fastest within the accuracy limit: {fastest_held} at {int8[fastest_held]['speedup_p50']:.2f}x."
           if fastest_held else " No INT8 variant stays within the accuracy limit."),
        f"- **{CLAIMS[1]}**: smallest INT8 file {smallest[0]} is {smallest[1]['size_ratio'] * 100:.0f} % of FP32 "
        f"({(1 - smallest[1]['size_ratio']) * 100:.0f} % smaller); "
        + ("holds." if smallest[1]["size_ratio"] <= 0.25 else "close but not 75 %: per-channel scales, INT32 biases "
           "and the graph itself do not shrink."),
        (f"- **{CLAIMS[2]}** (here: ≤ {limit * 100:g} point AP and recall drop on WIDER): "
        f"{len(held)} of {len(int8)} INT8 variants hold it ({', '.join(held) or 'none'})."),
    ]
    return lines


def _plots(name: str, summary: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = summary["variants"]
    names = list(variants)
    files = []
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
    files.append(path.name)
    return files


def write_report(out: Path, names: list[str] | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    results = load_results(names or [])
    lines = ["# Optimisation report", "",
             ("Generated by `ims-opt report` from the latest `ims-opt run` of each recipe. Latency: ONNX Runtime CPU, "
             "one thread, all variants timed interleaved in the same run (p50 / p99 ms). Memory: resident-set growth "
             "when the session loads and warms up (MB). Accuracy: WIDER subset (held-apart; evaluation only) AP@0.5 "
             "and recall at the operating threshold with the delta vs FP32 in percentage points; agreement with "
             "FP32 on frames of a clip never calibrated or trained on: share of FP32 faces found / mean box IoU / "
             "mean landmark error (px)."), ""]
    if not results:
        lines.append("No results yet: run `ims-opt run deploy/recipes/<model>.yaml` first.")
    for name, summary in results.items():
        recipe = summary["recipe"]
        lines += [(f"## {name} ({recipe['model']}, target {recipe['target']}, input "
                  f"{recipe['input_size_px'][0]}x{recipe['input_size_px'][1]})"), "",
                  (f"Measured {summary['measured_utc']} on {summary['cpu']}. Calibration: "
                  f"{', '.join(summary['calibration']['clips'])} every {summary['calibration']['every_s']} s; "
                  f"agreement: {', '.join(summary['agreement_data']['clips'])} every "
                  f"{summary['agreement_data']['every_s']} s. Limit: {recipe['max_accuracy_drop'] * 100:g} point."), "",
                  ("| variant | size KiB (vs FP32) | params | MACs | p50 / p99 ms | speed-up | RSS MB | AP (Δ pt) "
                  "| recall (Δ pt) | agreement found / IoU / lm px | within limit |"),
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        lines += [_row(n, r, summary.get("deploy")) for n, r in summary["variants"].items()]
        lines += ["", ("Notes: `qnn_*` variants are built for the QNN HTP (16-bit activations and 4-bit weights are "
                  "HTP features); ONNX Runtime CPU runs them through DequantizeLinear → float → QuantizeLinear, so "
                  "their CPU latency says nothing about the HTP. `fp16` has no FP16 kernels on x86 CPUs (ORT inserts "
                  "casts): it is for GPU / HTP targets."), "",
                  "Verdicts on the article's claims:", "", *verdicts(summary), ""]
        for n, r in summary["variants"].items():
            kept = r.get("facts", {}).get("kept_float")
            if kept:
                lines.append(f"- {n}: kept in float: {', '.join(kept)}")
        lines.append("")
        for png in _plots(name, summary, out):
            lines += [f"![{png}]({png})", ""]
    path = out / "README.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
