"""The spec: one YAML file is a whole experiment."""

from rsrl.errors import SpecError
from rsrl.spec.load import load_spec
from rsrl.spec.schema import Spec

__all__ = ["Spec", "SpecError", "load_spec"]
