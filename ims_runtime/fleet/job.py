"""The work of one recording in a fleet run, in plain Python (a Ray task runs :func:`run_job`; a test can call it
directly): the same deterministic replay as ``ims-runtime replay`` (spec, pipeline and source built the same way,
:func:`ims_runtime.replay.runner.run_replay`), its JSONL and a ``result.json`` with the KPIs.

Skipping: ``result.json`` records the key the output was made with: the resolved spec's sha256 (overrides
included), the models' sha256, the recording's content sha256 and ``max_frames``. A rerun with the same key skips
the recording; a different key replays it. A failed recording is never skipped.

Every outcome is returned as a dict, never raised: one bad recording must not stop the fleet.
"""

from __future__ import annotations

import hashlib
import json
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ims_runtime import catalog, errors, messages
from ims_runtime.atomic import atomic_write_text
from ims_runtime.fleet.recordings import Recording, content_sha256
from ims_runtime.paths import sha256_file
from ims_runtime.spec import LoadedSpec, load_spec

RESULT_FILE = "result.json"
RUN_FILE = "driver_state.jsonl"


@dataclass(frozen=True)
class FleetConfig:
    """What every task of one fleet run shares (paths must be readable on every worker)."""

    spec_path: str
    overrides: tuple[str, ...]
    out_dir: str
    max_frames: int | None = None


def spec_sha256(loaded: LoadedSpec) -> str:
    """sha256 of the validated spec (file plus ``--set`` overrides, defaults filled in) as canonical JSON: two
    spellings of one configuration hash alike, any changed setting hashes differently."""
    canonical = json.dumps(loaded.spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def model_files(loaded: LoadedSpec) -> dict[str, Path]:
    """``{stage: model file}`` for every configured model stage (raises MODEL_NOT_FOUND like the pipeline)."""
    stages = loaded.spec.stages
    out: dict[str, Path] = {}
    for name in type(stages).model_fields:
        stage = getattr(stages, name)
        if stage is not None and getattr(stage, "model", None):
            out[name] = catalog.resolve(stage.model, loaded.path.parent)
    return out


def models_sha256(loaded: LoadedSpec) -> dict[str, str]:
    """``{stage: sha256 of its model file}`` plus ``"all"``: the hash of that list."""
    per_stage = {stage: sha256_file(path) for stage, path in model_files(loaded).items()}
    combined = hashlib.sha256(json.dumps(per_stage, sort_keys=True).encode()).hexdigest()
    return {**per_stage, "all": combined}


def job_key(loaded: LoadedSpec, recording_sha256: str, max_frames: int | None) -> dict[str, Any]:
    return {"spec_sha256": spec_sha256(loaded), "models_sha256": models_sha256(loaded)["all"],
            "recording_sha256": recording_sha256, "max_frames": max_frames,
            "schema_version": messages.SCHEMA_VERSION}


def output_dir(config: FleetConfig, recording: Recording) -> Path:
    return Path(config.out_dir) / "recordings" / recording.name


def read_result(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / RESULT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _replay(loaded: LoadedSpec, recording: Recording, out_jsonl: Path, max_frames: int | None) -> float:
    """The replay itself, built exactly as ``ims-runtime replay`` builds it; returns its wall time in seconds."""
    from ims_runtime.pipeline.factory import build_pipeline
    from ims_runtime.pipeline.sources import open_source
    from ims_runtime.replay.runner import run_replay

    source = open_source(loaded.spec.source, str(recording.path), fail_fast_camera=True, loop=False)
    try:
        pipeline = build_pipeline(loaded)
        try:
            pipeline.warmup()
            summary = run_replay(pipeline, source, out_jsonl, max_frames, progress=False)
        finally:
            pipeline.close()
    finally:
        source.close()
    return summary.wall_s


def run_job(recording: Recording, config: FleetConfig) -> dict[str, Any]:
    """Replay one recording (or skip it when its output is current); always returns
    ``{name, recording, status: ok|skipped|failed, key, kpis | error, worker_wall_s}``."""
    from ims_runtime.fleet.kpis import recording_kpis
    from ims_runtime.report.run_data import load_run

    started = time.monotonic()
    folder = output_dir(config, recording)
    result: dict[str, Any] = {"name": recording.name, "recording": str(recording.path)}
    try:
        loaded = load_spec(config.spec_path, list(config.overrides))
        key = job_key(loaded, content_sha256(recording.path), config.max_frames)
        result["key"] = key
        previous = read_result(folder)
        if previous and previous.get("status") == "ok" and previous.get("key") == key \
                and (folder / RUN_FILE).is_file():
            return {**previous, "status": "skipped", "worker_wall_s": round(time.monotonic() - started, 3)}
        folder.mkdir(parents=True, exist_ok=True)
        wall_s = _replay(loaded, recording, folder / RUN_FILE, config.max_frames)
        result.update(status="ok", kpis=recording_kpis(load_run(folder / RUN_FILE), wall_s))
    except errors.IMSError as exc:
        result.update(status="failed", error=exc.to_dict())
    except Exception as exc:  # noqa: BLE001 - any failure of one recording is reported, never raised
        result.update(status="failed", error={"code": "INTERNAL", "kind": "internal", "message": repr(exc),
                                              "hint": "".join(traceback.format_exception(exc)[-3:])})
    result["worker_wall_s"] = round(time.monotonic() - started, 3)
    folder.mkdir(parents=True, exist_ok=True)
    if result["status"] == "failed":
        (folder / RUN_FILE).unlink(missing_ok=True)  # an old run's output is not this key's output
    atomic_write_text(folder / RESULT_FILE, json.dumps(result, indent=2) + "\n")
    return result
