"""Build a :class:`~ims_runtime.pipeline.pipeline.Pipeline` from a loaded spec — the one factory ``serve``,
its SIGHUP reload, ``replay`` and ``bench`` share.

It never builds models: a missing artefact is a coded ``MODEL_NOT_FOUND`` error that names the command that
makes it (``ims-runtime models build``); building stays an explicit step, never something the service or its
reload thread starts on its own.
"""

from __future__ import annotations

from ims_runtime.pipeline.pipeline import Pipeline, SpeedProvider
from ims_runtime.spec import LoadedSpec


def build_pipeline(loaded: LoadedSpec, live_speed: bool = False) -> Pipeline:
    """``live_speed``: subscribe to the vehicle speed (serve); replay runs with the speed unknown."""
    speed: SpeedProvider | None = None
    if live_speed and loaded.spec.policy is not None:
        from ims_runtime.pipeline.vehicle_speed import SpeedSubscriber

        cfg = loaded.spec.policy.speed
        speed = SpeedSubscriber(cfg.endpoint, cfg.topic, cfg.stale_after_s)
    try:
        return Pipeline(loaded.spec, loaded.path.parent, speed)
    except BaseException:
        if speed is not None and hasattr(speed, "close"):
            speed.close()
        raise
