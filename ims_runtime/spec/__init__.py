"""The YAML deployment spec: schema and loader."""

from ims_runtime.spec.loader import LoadedSpec, SpecError, SpecProblem, load_spec
from ims_runtime.spec.schema import Spec

__all__ = ["LoadedSpec", "Spec", "SpecError", "SpecProblem", "load_spec"]
