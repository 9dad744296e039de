"""How every stage opens its model: catalogue lookup → sha256 check → backend chain → contract from metadata.

One function, :func:`open_model`, so that the detector, face-state and fatigue stages cannot drift apart in how
they find, verify and describe their networks. The model's own facts (family, input size, normalisation) travel in
its ONNX ``metadata_props`` (``ims.*`` keys written by the toolchain's exporters); :class:`ModelFacts` reads them,
and a stage states what it needs in a :class:`ModelContract` that is checked at load — never at the first frame.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ims_runtime import catalog, errors
from ims_runtime.backends import Backend, open_chain
from ims_runtime.backends.base import BackendConfigBase

_NORMALISATION = re.compile(r"^\(pixel - ([0-9.]+)\) / ([0-9.]+)$")


@dataclass(frozen=True)
class ModelFacts:
    """What a model artefact says about itself (``ims.*`` metadata), with ``None`` for facts it does not carry
    (e.g. an ONNX file exported elsewhere: the stage then uses its documented defaults)."""

    family: str | None
    #: fixed input (width, height) in pixels, or None for dynamic-size models
    input_wh_px: tuple[int, int] | None
    #: per-channel mean subtracted from 0..255 pixels (BGR order), or None
    input_mean_bgr: tuple[float, float, float] | None
    #: pixels are multiplied by this after the mean is subtracted (1 / std), or None
    input_scale: float | None
    #: the precision the file's weights are stored in (``ims.precision``: fp32, int8, …), or None
    precision: str | None = None

    @classmethod
    def from_backend(cls, backend: Backend) -> ModelFacts:
        meta = backend.metadata
        shape = backend.inputs[0].shape if backend.inputs else ()
        wh = None
        if len(shape) == 4 and all(isinstance(d, int) for d in shape[2:]):
            wh = (int(shape[3]), int(shape[2]))
        mean = scale = None
        if "ims.input_mean" in meta:
            values = tuple(float(v) for v in meta["ims.input_mean"].split(","))
            mean = values if len(values) == 3 else (values[0],) * 3
            scale = float(meta.get("ims.input_scale", "1"))
        elif (match := _NORMALISATION.match(meta.get("ims.input_normalisation", ""))) is not None:
            mean = (float(match.group(1)),) * 3
            scale = 1.0 / float(match.group(2))
        return cls(family=meta.get("ims.model_family"), input_wh_px=wh, input_mean_bgr=mean, input_scale=scale,
                   precision=meta.get("ims.precision"))


@dataclass(frozen=True)
class ModelContract:
    """What a stage needs from its model. ``family``: the ``ims.model_family`` it must carry (models without the
    key are accepted: older or foreign exports); ``output_names``: outputs that must exist."""

    family: str
    output_names: tuple[str, ...] = ()
    #: the spec field to point at a better model, for the error hint
    spec_field: str = "model"


@dataclass
class OpenedModel:
    """A model ready to run, and the facts the stage reports about it."""

    backend: Backend
    path: Path
    sha256: str
    facts: ModelFacts
    #: why earlier backends of the stage's fallback list were skipped (empty when the first one opened)
    backend_skips: list[dict[str, object]] = field(default_factory=list)

    @classmethod
    def from_backend(cls, backend: Backend, sha256: str = "") -> OpenedModel:
        """Wrap a backend opened elsewhere (tools and tests that open one backend directly)."""
        return cls(backend, backend.model_path, sha256, ModelFacts.from_backend(backend))

    def running_precision(self, spec_precision: str) -> str | None:
        """The precision the stage really runs at: the spec's when its first backend opened (e.g. an FP16
        TensorRT engine built from an FP32 file), else the file's own (``ims.precision``) — a fallback backend
        runs the file as it is. None when a fallback runs a file that does not say."""
        return spec_precision if not self.backend_skips else self.facts.precision

    def contract_error(self, problem: str, spec_field: str) -> errors.IMSError:
        return errors.IMSError(errors.MODEL_CONTRACT, f"{self.path}: {problem}",
                               f"point {spec_field} at a model of the right kind and size")


def open_model(ref: str, sha256: str | None, backends: list[BackendConfigBase], stage: str,
               contract: ModelContract, spec_dir: Path | None = None) -> OpenedModel:
    """Resolve ``ref`` (catalogue name, file name or path), check its sha256 against the spec's pin, open the
    first backend of the chain that works, and check the contract. Raises :class:`errors.IMSError`
    (``MODEL_NOT_FOUND`` with the command that builds it, ``MODEL_SHA256_MISMATCH``, ``MODEL_CONTRACT``,
    ``BACKEND_*``)."""
    path = catalog.resolve(ref, spec_dir)
    sha = catalog.check_sha256(path, sha256)
    opened = open_chain(path, list(backends), stage)
    model = OpenedModel(opened.backend, path, sha, ModelFacts.from_backend(opened.backend), opened.skipped)
    try:
        _check(model, contract)
    except errors.IMSError:
        model.backend.close()
        raise
    return model


def _check(model: OpenedModel, contract: ModelContract) -> None:
    family = model.facts.family
    if family not in (None, contract.family):
        raise model.contract_error(f"model family is {family!r}, expected {contract.family!r}", contract.spec_field)
    names = {o.name for o in model.backend.outputs}
    missing = sorted(set(contract.output_names) - names)
    if missing:
        raise model.contract_error(f"outputs {sorted(names)} lack {missing}", contract.spec_field)
