"""cnngraph: compile declarative CNN specs into validated, shape-inferred, cost-counted graphs.

>>> import cnngraph
>>> model = cnngraph.load("specs/resnet18.yaml")
>>> model.params, model.macs, model.output_shape
"""

from .errors import Diagnostic, Location, SpecError
from .model import Model, load

__all__ = ["Diagnostic", "Location", "Model", "SpecError", "load"]
__version__ = "0.1.0"
