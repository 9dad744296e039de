"""Fan the recordings out over Ray: one task per recording (:func:`ims_runtime.fleet.job.run_job`), at most
``workers`` in flight, results handled as they finish (progress on stderr), a failed task reported and the rest
carried on.

Without an address a local Ray is started for this run (and stopped after it); with ``auto`` or ``ray://HOST:PORT``
the run joins that cluster (docs/replay.md: every worker needs ims-runtime, the models and the recordings at the
same paths). A Ray already initialised in this process (a test, a notebook) is used as it is.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

import ray
from tqdm import tqdm

from ims_runtime import errors
from ims_runtime.fleet.job import FleetConfig, run_job
from ims_runtime.fleet.recordings import Recording

#: passed to the workers of a cluster (a local Ray's workers inherit the environment)
FORWARDED_ENV = ("IMS_MODEL_PATH", "IMS_CACHE_DIR", "IMS_SHARED_DIR")
#: a local Ray's shared-memory object store: results are small JSON, not frames
LOCAL_OBJECT_STORE_BYTES = 200 * 1024 * 1024


def _start_ray(address: str | None, workers: int | None) -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reporting from a vehicle-software tool
    try:
        if address:
            env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
            ray.init(address=address, runtime_env={"env_vars": env} if env else None, log_to_driver=False,
                     logging_level="warning")
        else:
            ray.init(num_cpus=workers or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                     logging_level="warning", object_store_memory=LOCAL_OBJECT_STORE_BYTES)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise errors.IMSError(errors.CLUSTER_UNREACHABLE, f"cannot start or join Ray at {address or 'local'}: "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                              "check --address (auto needs `ray start --head` on this machine; ray://HOST:10001 "
                              "a head with the client server) or run without it for a local Ray") from exc


def _died(recording: Recording, exc: Exception) -> dict[str, Any]:
    """The result of a task whose worker failed (crashed, killed, lost node) rather than returning."""
    return {"name": recording.name, "recording": str(recording.path), "status": "failed",
            "error": {"code": "WORKER_FAILED", "kind": "internal", "message": str(exc).splitlines()[0][:500],
                      "hint": "see the Ray worker logs; rerun to retry this recording"}}


def progress_line(done: int, total: int, result: dict[str, Any]) -> str:
    head = f"[{done}/{total}] {result['name']}: "
    if result["status"] == "failed":
        error = result["error"]
        return head + f"FAILED error[{error['code']}]: {error['message']}"
    kpis = result["kpis"]
    if result["status"] == "skipped":
        return head + f"skipped (output current for this spec, models and recording), {kpis['frames']} frames"
    return head + f"ok, {kpis['frames']} frames in {kpis['wall_s']:.1f} s ({kpis['frames_per_s']} frames/s)"


def run_fleet(recordings: list[Recording], config: FleetConfig, address: str | None = None,
              workers: int | None = None, report: Callable[[str], None] | None = None,
              progress: bool | None = None) -> tuple[list[dict[str, Any]], float]:
    """Replay every recording; returns the results in the order of ``recordings`` and the wall time in s."""
    started_here = not ray.is_initialized()
    if started_here:
        _start_ray(address, workers)
    report = report or (lambda line: tqdm.write(line, file=sys.stderr))
    try:
        in_flight_max = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        # one CPU per task: the pipeline's stages run one inference thread each (the spec's `threads`)
        task = ray.remote(num_cpus=1, max_retries=1)(run_job)
        pending = list(enumerate(recordings))
        running: dict[Any, tuple[int, Recording]] = {}
        results: list[dict[str, Any] | None] = [None] * len(recordings)
        started = time.monotonic()
        bar = tqdm(total=len(recordings), unit="recording", file=sys.stderr, dynamic_ncols=True,
                   disable=not (sys.stderr.isatty() if progress is None else progress))
        with bar:
            while pending or running:
                while pending and len(running) < in_flight_max:
                    index, recording = pending.pop(0)
                    running[task.remote(recording, config)] = (index, recording)
                finished, _ = ray.wait(list(running), num_returns=1)
                index, recording = running.pop(finished[0])
                try:
                    result = ray.get(finished[0])
                except ray.exceptions.RayError as exc:
                    result = _died(recording, exc)
                results[index] = result
                bar.update(1)
                report(progress_line(sum(r is not None for r in results), len(recordings), result))
        return [r for r in results if r is not None], time.monotonic() - started
    finally:
        if started_here:
            ray.shutdown()
