"""The deployment spec: every shipped spec validates; bad specs fail naming the YAML path and line."""

from pathlib import Path

import pytest
from conftest import SPECS, cli
from pydantic import ValidationError

from ims_runtime import errors
from ims_runtime.spec import SpecError, load_spec

GOOD = """\
schema_version: 1
name: t
stages:
  face_detector:
    score_threshold: 0.5
"""


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_spec_is_valid(path):
    result = cli("validate", str(path))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("text, code, yaml_path, line, words", [
    # a misspelt key is an error, not silently ignored
    (GOOD.replace("score_threshold", "scor_threshold"), errors.SPEC_INVALID,
     "stages.face_detector.scor_threshold", 5, "unknown key"),
    # a value of the wrong type
    (GOOD.replace("0.5", "high"), errors.SPEC_INVALID, "stages.face_detector.score_threshold", 5, "number"),
    # out of range
    (GOOD.replace("0.5", "1.5"), errors.SPEC_INVALID, "stages.face_detector.score_threshold", 5, "less than 1"),
    # input sizes must suit the network's stride 32
    (GOOD + "    input_size_px: [641, 384]\n", errors.SPEC_INVALID, "stages.face_detector.input_size_px", 6,
     "multiples of 32"),
    # unknown backend names the allowed ones
    (GOOD + "    backends: [{type: ort_gpu}]\n", errors.SPEC_INVALID, "stages.face_detector.backends[0]", 6,
     "ort_cpu"),
    # a transport ZeroMQ PUB cannot bind for us
    (GOOD + "publish: {endpoint: 'udp://1.2.3.4:5'}\n", errors.SPEC_INVALID, "publish.endpoint", 6, "ipc://"),
    # a camera without a device
    (GOOD + "source: {kind: camera}\n", errors.SPEC_INVALID, "source", 6, "device_index"),
    # the name is required
    ("schema_version: 1\n", errors.SPEC_INVALID, "name", None, "required"),
    # YAML syntax error, with the line
    ("name: t\nsource:\n  kind: video\n   path: x.mp4\n", errors.SPEC_YAML_SYNTAX, "(yaml)", 4, "YAML syntax"),
])
def test_bad_specs_name_the_field_and_line(tmp_path: Path, text, code, yaml_path, line, words):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.code is code
    problem = next(p for p in info.value.problems if p.yaml_path.startswith(yaml_path))
    if line is not None:
        assert problem.line == line
    assert words in problem.message


def test_every_problem_is_listed_at_once(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(GOOD.replace("score_threshold: 0.5", "score_threshold: 2\n    nms_iou: 0.3") + "extra: 1\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert {p.yaml_path for p in info.value.problems} == {
        "stages.face_detector.score_threshold", "stages.face_detector.nms_iou", "extra"}


def test_validate_exits_2_and_names_an_unknown_key(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(GOOD + "publsh: {}\n")
    result = cli("validate", str(path))
    assert result.returncode == 2
    assert "publsh: line 6: unknown key" in result.stderr


def test_set_overrides_are_validated_like_the_file(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(GOOD)
    spec = load_spec(path, ["stages.face_detector.input_size_px=[320, 192]", "publish.send_hwm_msgs=8"]).spec
    assert spec.stages.face_detector.input_size_px == (320, 192) and spec.publish.send_hwm_msgs == 8
    with pytest.raises(SpecError) as info:
        load_spec(path, ["stages.face_detector.score_threshold=7"])
    assert str(info.value.problems[0]).startswith("stages.face_detector.score_threshold: (--set)")


def test_missing_spec_file_is_its_own_error(tmp_path):
    with pytest.raises(errors.IMSError) as info:
        load_spec(tmp_path / "nope.yaml")
    assert info.value.code is errors.SPEC_NOT_FOUND


def test_the_spec_is_frozen():
    spec = load_spec(SPECS / "dev-cpu.yaml").spec
    with pytest.raises(ValidationError):
        spec.stages.face_detector.score_threshold = 0.1  # type: ignore[misc]
