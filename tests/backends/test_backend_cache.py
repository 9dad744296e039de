"""Cache keys for compiled accelerator artefacts: any input that changes the compiled code changes the key."""

from __future__ import annotations

from pathlib import Path

from ims_runtime.atomic import atomic_write_bytes
from ims_runtime.backends import _cache

SHA = "ab" * 32


def key(**changes: object) -> _cache.CacheKey:
    args: dict = {"model_sha256": SHA, "sdk": "qnn", "sdk_version": "2.51.0",
                  "target": {"soc_model": 52, "htp_arch": 73}, "options": {"fp16": True}}
    args.update(changes)
    return _cache.CacheKey.make(**args)


def test_same_inputs_same_key_and_order_does_not_matter() -> None:
    a = key(target={"soc_model": 52, "htp_arch": 73})
    b = key(target={"htp_arch": 73, "soc_model": 52})
    assert a.digest == b.digest
    assert len(a.digest) == _cache.KEY_CHARS


def test_model_sdk_target_and_options_each_change_the_key() -> None:
    base = key().digest
    variants = [key(model_sha256="cd" * 32), key(sdk_version="2.52.0"), key(target={"soc_model": 43, "htp_arch": 73}),
                key(target={"soc_model": 52, "htp_arch": 75}), key(options={"fp16": False}), key(sdk="tensorrt")]
    digests = [v.digest for v in variants]
    assert base not in digests
    assert len(set(digests)) == len(digests)


def test_sha_is_case_insensitive() -> None:
    assert key(model_sha256=SHA.upper()).digest == key().digest


def test_artefact_path_sidecar_round_trip_and_discard(tmp_path: Path) -> None:
    k = key()
    path = _cache.artefact_path("qnn_context", Path("/models/rf.onnx"), k, "_ctx.onnx", root=tmp_path)
    assert path.parent == tmp_path / "qnn_context" and path.name == f"rf.{k.digest}_ctx.onnx"
    atomic_write_bytes(path, b"binary")
    _cache.write_sidecar(path, k, placement={"QNNExecutionProvider": {"Conv": 3}})
    facts = _cache.read_sidecar(path)
    assert facts["sdk_version"] == "2.51.0" and facts["target"] == {"htp_arch": "73", "soc_model": "52"}
    assert facts["placement"] == {"QNNExecutionProvider": {"Conv": 3}}
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
    _cache.discard(path)
    assert not path.exists() and not _cache.sidecar_path(path).exists()
    assert _cache.read_sidecar(path) == {}
