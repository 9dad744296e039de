"""Bad inputs give one clear line, the right error code and exit code, and leave nothing half-written."""

import pytest
from conftest import cli

SPEC = """\
schema_version: 1
name: t
stages:
  face_detector:
    model: {model}
{extra}"""


def _spec(tmp_path, model, extra=""):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(model=model, extra=extra))
    return path


@pytest.mark.parametrize("case, make_spec, input_name, code, exit_code", [
    ("missing spec file", lambda p, m: p / "nope.yaml", "clip", "SPEC_NOT_FOUND", 2),
    ("missing model file", lambda p, m: _spec(p, str(p / "missing.onnx")), "clip", "MODEL_NOT_FOUND", 3),
    ("unknown model name", lambda p, m: _spec(p, "no_such_model"), "clip", "MODEL_NOT_FOUND", 3),
    ("sha256 pinned to another file", lambda p, m: _spec(p, str(m), '    sha256: "' + '0' * 64 + '"\n'), "clip",
     "MODEL_SHA256_MISMATCH", 3),
    ("corrupt ONNX file", lambda p, m: (p / "bad.onnx").write_bytes(b"not a protobuf" * 10) and
     _spec(p, str(p / "bad.onnx")), "clip", "MODEL_CORRUPT", 3),
    ("unreadable video", lambda p, m: _spec(p, str(m)), "junk", "SOURCE_UNREADABLE", 5),
    ("camera not present", lambda p, m: _spec(p, str(m)), "/dev/video99", "SOURCE_CAMERA_NOT_PRESENT", 5),
])
def test_replay_errors(tmp_path, clip, detector_model, case, make_spec, input_name, code, exit_code):
    spec = make_spec(tmp_path, detector_model)
    inputs = {"clip": str(clip), "junk": str(tmp_path / "junk.mp4"), "/dev/video99": "/dev/video99"}
    (tmp_path / "junk.mp4").write_bytes(b"\x00" * 1000)
    out = tmp_path / "out.jsonl"
    result = cli("replay", "--spec", str(spec), inputs[input_name], "--out", str(out), "--max-frames", "2")
    assert result.returncode == exit_code, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error[")]
    assert len(error_lines) == 1 and error_lines[0].startswith(f"error[{code}]")
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_models_command_says_how_to_fix_a_missing_artefact(tmp_path, dev_spec_path):
    # the FP32 reference spec (dev-cpu.yaml deploys the INT8 detector, built by `ims-opt build`)
    fp32_spec = dev_spec_path.with_name("dev-cpu-fp32.yaml")
    result = cli("models", "--spec", str(fp32_spec), env={"IMS_CACHE_DIR": str(tmp_path)})
    # the built artefact lives in the cache; with an empty cache it is missing and the fix is named
    assert result.returncode == 1
    assert "MISSING  retinaface_mnet025_fp32" in result.stdout and "ims-opt export retinaface" in result.stdout


def test_logging_follows_the_current_stderr_after_configure(monkeypatch, capsys):
    """Before: configure() captured the stderr object of the moment; once that was closed (a finished test's
    capture, a redirected daemon) every later log line raised 'I/O operation on closed file'."""
    import io

    import structlog

    from ims_runtime import logs

    old = io.StringIO()
    monkeypatch.setattr("sys.stderr", old)
    logs.configure("info", json_logs=True)
    old.close()
    new = io.StringIO()
    monkeypatch.setattr("sys.stderr", new)
    structlog.get_logger("t").warning("still_logging", n=1)
    assert '"event": "still_logging"' in new.getvalue()
