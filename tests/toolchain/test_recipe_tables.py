"""The recipe runner's tables and stamps: every recipe ``model`` has an adapter, every variant ``kind`` a builder,
and stamp keys keep the encoding existing caches were stamped with."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import get_args

import pytest

from ims_runtime import errors
from ims_runtime.toolchain.adapters import DetectorAdapter
from ims_runtime.toolchain.families import ADAPTERS, adapter_for
from ims_runtime.toolchain.recipe import Recipe, VariantSpec
from ims_runtime.toolchain.stamps import is_fresh, read_stamp, spec_key, stamp_key, write_stamp
from ims_runtime.toolchain.variants import BUILDERS


def test_every_recipe_model_has_an_adapter_and_an_unknown_one_is_a_coded_error() -> None:
    assert set(ADAPTERS) == set(get_args(Recipe.model_fields["model"].annotation))
    assert type(adapter_for("retinaface")) is DetectorAdapter
    assert adapter_for("retinaface") is not adapter_for("retinaface")  # per-run caches are never shared
    with pytest.raises(errors.IMSError) as info:
        adapter_for("yolo")
    assert info.value.code is errors.SPEC_INVALID and "face_state, fatigue, retinaface" in (info.value.hint or "")


def test_every_variant_kind_has_a_builder() -> None:
    assert set(BUILDERS) == set(get_args(VariantSpec.model_fields["kind"].annotation))


def test_stamp_key_is_sha256_of_the_sorted_key_json_existing_caches_were_stamped_with() -> None:
    assert stamp_key("pre", {"b": 1, "a": Path("/x")}) == \
        hashlib.sha256(b'["pre", {"a": "/x", "b": 1}]').hexdigest()


def test_fields_added_later_count_in_the_key_only_when_set() -> None:
    plain = spec_key(VariantSpec(name="int8", kind="ptq"))
    assert not {"steps", "float_weights"} & set(plain) and plain["method"] == "minmax"
    assert spec_key(VariantSpec(name="int8", kind="ptq", float_weights="fp16"))["float_weights"] == "fp16"


def test_an_output_is_fresh_only_with_its_own_key(tmp_path: Path) -> None:
    out = tmp_path / "model.onnx"
    write_stamp(out, "k1", facts={"kept_float": ["a"]})
    assert not is_fresh(out, "k1")  # a stamp without its output is not enough
    out.write_bytes(b"onnx")
    assert is_fresh(out, "k1") and not is_fresh(out, "k2")
    assert read_stamp(out) == {"key": "k1", "facts": {"kept_float": ["a"]}}
