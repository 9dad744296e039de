"""Shared fixtures: where ../shared is, the model search path, and the FP32 detector artefact.

``IMS_SHARED_DIR`` points at the read-only shared folder (default: ``<repo>/../shared``). The FP32 RetinaFace
ONNX is a build artefact: ``.ci/run`` builds it with ``ims-runtime models build`` before the tests; when it is
missing here the session builds it once (needs the toolchain extra) or skips the tests that need it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("IMS_SHARED_DIR", REPO.parent / "shared")).resolve()
SPECS = REPO / "deploy" / "specs"

# The runtime finds inputs through IMS_MODEL_PATH; make sure ../shared/models is on it for every test and for
# subprocesses the tests start.
_model_path = [p for p in os.environ.get("IMS_MODEL_PATH", "").split(":") if p]
if str(SHARED / "models") not in _model_path:
    _model_path.append(str(SHARED / "models"))
os.environ["IMS_MODEL_PATH"] = ":".join(_model_path)


def shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present (set IMS_SHARED_DIR)")
    return path


@pytest.fixture(scope="session")
def detector_model() -> Path:
    """The FP32 RetinaFace ONNX, built once if missing (with the INT8 one dev-cpu.yaml deploys)."""
    from ims_runtime import catalog, errors

    try:
        catalog.resolve("retinaface_mnet025_int8")
        catalog.resolve("face_state_v1_int8")
        return catalog.resolve("retinaface_mnet025_fp32")
    except errors.IMSError:
        pass
    result = subprocess.run([sys.executable, "-m", "ims_runtime.toolchain.cli", "build",
                             "retinaface_mnet025_fp32", "retinaface_mnet025_int8", "face_state_v1_int8"],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot build the detector artefact (toolchain missing?): {result.stderr[-300:]}")
    return catalog.resolve("retinaface_mnet025_fp32")


@pytest.fixture(scope="session")
def dev_spec_path() -> Path:
    return SPECS / "dev-cpu.yaml"


@pytest.fixture(scope="session")
def dev_spec(dev_spec_path: Path, detector_model: Path):
    from ims_runtime.spec import load_spec

    return load_spec(dev_spec_path).spec


@pytest.fixture(scope="session")
def detector(dev_spec):
    from ims_runtime.stages.face_detector import FaceDetector

    det = FaceDetector.from_spec(dev_spec.stages.face_detector)
    yield det
    det.close()


@pytest.fixture(scope="session")
def reference_detector(detector_model):
    """The FP32 reference detector (dev-cpu-fp32.yaml): the alignment the face-state network was trained on."""
    from ims_runtime.spec import load_spec
    from ims_runtime.stages.face_detector import FaceDetector

    det = FaceDetector.from_spec(load_spec(SPECS / "dev-cpu-fp32.yaml").spec.stages.face_detector)
    yield det
    det.close()


@pytest.fixture
def clip() -> Path:
    return shared("data", "videos", "video01.mp4")


@pytest.fixture
def vehicle_gateway(tmp_path):
    """A vehicle gateway stand-in: a real ZeroMQ PUB bound on ipc:// → ``(endpoint, socket)``."""
    import zmq

    endpoint = f"ipc://{tmp_path}/vehicle.sock"
    socket = zmq.Context.instance().socket(zmq.PUB)
    socket.setsockopt(zmq.LINGER, 0)
    socket.bind(endpoint)
    yield endpoint, socket
    socket.close(linger=0)


def cli(*args: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``ims-runtime ARGS`` in a subprocess (the real entry point)."""
    return subprocess.run([sys.executable, "-m", "ims_runtime.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env={**os.environ, **(env or {})}, check=False)


@pytest.fixture
def torch_one_thread():
    """One torch thread for toolchain tests: with other jobs on the 2 CI cores, two threads made a 320x192
    RetinaFace forward ~50x slower. Use with ``pytestmark = pytest.mark.usefixtures("torch_one_thread")``."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
