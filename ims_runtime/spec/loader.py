"""Load a YAML deployment spec with errors that name the YAML path and line and say what is allowed.

YAML is read with the safe loader only. ``--set dotted.path=value`` overrides are applied to the parsed mapping
before validation, so they are checked exactly like the file; their errors say ``(--set)`` instead of a line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ims_runtime import errors, inputs
from ims_runtime.spec.schema import Spec


@dataclass(frozen=True)
class SpecProblem:
    """One thing wrong with a spec."""

    yaml_path: str
    line: int | None  # 1-based; None for keys that are not in the file (missing, or set by --set)
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "(--set)" if self.line == 0 else "(not in file)"
        return f"{self.yaml_path}: {where}: {self.message}"


class SpecError(errors.IMSError):
    def __init__(self, code: errors.ErrorCode, file: Path | str, problems: list[SpecProblem]) -> None:
        self.file = str(file)
        self.problems = problems
        summary = "; ".join(str(p) for p in problems[:3]) + (" …" if len(problems) > 3 else "")
        super().__init__(code, f"{file}: {summary}", "see `ims-runtime validate SPEC` for every problem")


@dataclass
class LoadedSpec:
    spec: Spec
    path: Path
    #: the mapping as validated (file plus overrides), for reload comparisons and logging
    raw: dict[str, Any] = field(default_factory=dict)


def _node_at(node: yaml.Node | None, loc: tuple[Any, ...]) -> yaml.Node | None:
    """The deepest YAML node along ``loc`` (pydantic's error location)."""
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = None
            for k_node, v_node in node.value:
                if k_node.value == str(key):
                    match = (k_node, v_node)
                    break
            if match is None:
                return node
            node = match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            return node
    return node


def _dotted(loc: tuple[Any, ...]) -> str:
    text = ""
    for key in loc:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text or "(top level)"


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # Discriminated unions insert the tag ("ort_cpu") into the location; drop it so the path matches the YAML.
    from ims_runtime.backends import registered

    tags = set(registered())
    return tuple(k for i, k in enumerate(loc) if not (isinstance(k, str) and k in tags and i > 0
                                                       and isinstance(loc[i - 1], int)))


def _message(err: dict[str, Any]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key (remove it or check its spelling)"
    if kind == "union_tag_invalid":
        return f"unknown backend type {err.get('input')!r}; allowed: {err['ctx']['expected_tags']}"
    if kind == "literal_error":
        return f"{err['input']!r} is not allowed; expected {err['ctx']['expected']}"
    return err["msg"]


def _set_dotted(mapping: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node: Any = mapping
    for part in parts[:-1]:
        if isinstance(node, list):
            node = node[int(part)]
            continue
        if node.get(part) is None:
            node[part] = {}
        node = node[part]
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def parse_overrides(items: list[str] | None) -> list[tuple[str, Any]]:
    """``["stages.face_detector.score_threshold=0.7"]`` → ``[("stages…", 0.7)]`` (values parsed as YAML)."""
    parsed = []
    for item in items or []:
        if "=" not in item:
            raise SpecError(errors.SPEC_INVALID, "--set", [SpecProblem(item, 0, "expected dotted.path=value")])
        key, text = item.split("=", 1)
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise SpecError(errors.SPEC_INVALID, "--set", [SpecProblem(item, 0, "expected dotted.path=value")])
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except RecursionError:
            raise SpecError(errors.SPEC_INVALID, "--set", [SpecProblem(key, 0, "value nested too deeply")]) from None
        except yaml.YAMLError as exc:  # not YAML, or a tag the safe loader refuses (!!python/object, !custom)
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise SpecError(errors.SPEC_INVALID, "--set", [SpecProblem(
                key, 0, f"value {text!r} is not a plain YAML value: {problem}")]) from exc
        parsed.append((key, value))
    return parsed


def load_spec(path: str | Path, overrides: list[str] | None = None) -> LoadedSpec:
    """Read, override and validate a spec; raise :class:`SpecError` listing every problem."""
    path = Path(path)
    if not path.exists():
        raise errors.IMSError(errors.SPEC_NOT_FOUND, f"spec file {path} does not exist",
                              "pass an existing YAML file, e.g. deploy/specs/dev-cpu.yaml")
    text = inputs.read_text(path, "spec file", errors.SPEC_NOT_FOUND, errors.SPEC_UNREADABLE)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(errors.SPEC_YAML_SYNTAX, path, [SpecProblem("(yaml)", line, f"YAML syntax: {problem}")]) \
            from exc
    except RecursionError:  # "[[[[…" thousands deep: the parser recurses per level
        raise SpecError(errors.SPEC_YAML_SYNTAX, path, [SpecProblem("(yaml)", None, "nested too deeply to be a "
                                                                    "spec")]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(errors.SPEC_INVALID, path, [SpecProblem("(top level)", 1, "the spec must be a mapping")])
    overridden: set[str] = set()
    for key, value in parse_overrides(overrides):
        try:
            _set_dotted(data, key, value)
        except (KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:
            raise SpecError(errors.SPEC_INVALID, path, [SpecProblem(key, 0, f"cannot set: {exc}")]) from exc
        overridden.add(key)
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = _clean_loc(tuple(err["loc"]))
            dotted = _dotted(loc)
            # an error at, inside or *above* an overridden path is the override's (a misspelled --set key
            # is reported at its first unknown part), not a line of the file
            if any(dotted == o or dotted.startswith(o + ".") or o.startswith(dotted + ".") for o in overridden):
                line: int | None = 0
            else:
                node = _node_at(root, loc)
                line = node.start_mark.line + 1 if node is not None else None
            problems.append(SpecProblem(dotted, line, _message(err)))
        raise SpecError(errors.SPEC_INVALID, path, problems) from exc
    return LoadedSpec(spec=spec, path=path.resolve(), raw=data)
