"""rmforge: one toolkit for reward models (data, annotation, training, evaluation, serving)."""

__version__ = "0.1.0"
