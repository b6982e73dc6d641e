"""rmforge: one toolkit for reward models (data, annotation, training, evaluation, serving).

``rmforge.evaluate(model, benchmark=..., data=...)`` evaluates a reward model: ``rmforge.evaluate``
is the evaluation subpackage, imported on first use and callable (see :mod:`rmforge.evaluate`).
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "evaluate":
        import importlib

        return importlib.import_module("rmforge.evaluate")
    raise AttributeError(f"module 'rmforge' has no attribute {name!r}")
