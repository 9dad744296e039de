"""TensorRT backend: what can be checked without TensorRT (guard, fallback, cache keys, config, spec).

TensorRT cannot be installed on the development machines (NVIDIA's wheels come from NVIDIA's own index); the
``hardware`` test runs only on a Jetson with TensorRT and compares against ONNX Runtime CPU
(``scripts/verify_tensorrt.py`` is the user-facing version of the same check).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ims_runtime import errors
from ims_runtime.backends import open_chain
from ims_runtime.backends.ort_cpu import OrtCpuConfig
from ims_runtime.backends.tensorrt import TensorRtBackend, TensorRtConfig, engine_key
from ims_runtime.spec.loader import load_spec

REPO = Path(__file__).resolve().parents[2]
HAVE_TRT = importlib.util.find_spec("tensorrt") is not None
GPU = {"gpu": "Orin", "compute_capability": "8.7"}


def _model(tmp_path: Path) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "relu.onnx")
    return tmp_path / "relu.onnx"


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed here")
def test_selecting_tensorrt_without_it_is_a_clear_backend_unavailable(tmp_path: Path) -> None:
    with pytest.raises(errors.IMSError) as info:
        TensorRtBackend(_model(tmp_path), TensorRtConfig())
    assert info.value.code is errors.BACKEND_UNAVAILABLE
    assert "tensorrt" in info.value.message and "Dockerfile.jetson" in (info.value.hint or "")


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed here")
def test_chain_falls_back_to_ort_cpu_and_reports_why(tmp_path: Path) -> None:
    opened = open_chain(_model(tmp_path), [TensorRtConfig(), OrtCpuConfig()], "face_detector")
    assert opened.backend.key == "ort_cpu" and opened.chain_index == 1
    assert len(opened.skipped) == 1
    assert opened.skipped[0]["backend"] == "tensorrt" and opened.skipped[0]["code"] == "BACKEND_UNAVAILABLE"


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed here")
def test_ims_opt_compile_trt_goes_through_the_backend_and_says_tensorrt_is_missing(tmp_path: Path) -> None:
    """``ims-opt compile trt`` is the backend's engine build (one compiler, one cache key): without TensorRT it
    stops at the backend's own guard, as a coded one-line error."""
    result = subprocess.run([sys.executable, "-m", "ims_runtime.toolchain.cli", "compile", "trt",
                             str(_model(tmp_path))], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == errors.BACKEND_UNAVAILABLE.exit_code
    assert result.stderr.startswith("error[BACKEND_UNAVAILABLE]") and "Dockerfile.jetson" in result.stderr
    assert "Traceback" not in result.stderr


def test_engine_key_depends_on_model_tensorrt_version_gpu_and_options() -> None:
    cfg = TensorRtConfig()
    base = engine_key("ab" * 32, "10.3.0", GPU, cfg).digest
    variants = [engine_key("cd" * 32, "10.3.0", GPU, cfg), engine_key("ab" * 32, "10.7.0", GPU, cfg),
                engine_key("ab" * 32, "10.3.0", {"gpu": "Orin", "compute_capability": "8.9"}, cfg),
                engine_key("ab" * 32, "10.3.0", GPU, TensorRtConfig(precision="int8_qdq")),
                engine_key("ab" * 32, "10.3.0", GPU, TensorRtConfig(input_shapes={"input": (1, 3, 384, 640)}))]
    assert base == engine_key("ab" * 32, "10.3.0", dict(GPU), TensorRtConfig()).digest
    assert len({base, *(v.digest for v in variants)}) == 1 + len(variants)


def test_config_is_strict() -> None:
    with pytest.raises(ValueError):
        TensorRtConfig(precision="int4")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="extra"):
        TensorRtConfig(fp16=True)  # type: ignore[call-arg]


@pytest.mark.parametrize("name", ["jetson-orin-trt.yaml", "qcs8255-qnn.yaml"])
def test_accelerator_specs_validate_with_a_cpu_fallback(name: str) -> None:
    spec = load_spec(REPO / "deploy" / "specs" / name).spec
    chain = [b.type for b in spec.stages.face_detector.backends]
    assert chain[0] in ("tensorrt", "qnn_htp") and chain[-1] == "ort_cpu"


@pytest.mark.hardware
@pytest.mark.skipif(not HAVE_TRT, reason="needs TensorRT and an NVIDIA GPU (Jetson)")
def test_tensorrt_matches_ort_cpu_on_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ims_runtime.backends.ort_cpu import OrtCpuBackend

    monkeypatch.setenv("IMS_CACHE_DIR", str(tmp_path / "cache"))
    model = _model(tmp_path)
    x = np.linspace(-1, 1, 8, dtype=np.float32)[None]
    trt_backend = TensorRtBackend(model, TensorRtConfig(precision="fp32"))
    np.testing.assert_allclose(trt_backend.run({"x": x})[0], OrtCpuBackend(model, OrtCpuConfig()).run({"x": x})[0])
    assert TensorRtBackend(model, TensorRtConfig(precision="fp32")).engine_status == "hit"
