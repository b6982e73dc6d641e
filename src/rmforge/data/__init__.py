"""Data stage: canonical samples, loaders, converters, processing, validation and export.

Importing this package never imports torch.
"""

from rmforge.data.io import load_samples, read_samples, write_samples
from rmforge.data.schema import Message, Sample, Scale

__all__ = ["Message", "Sample", "Scale", "load_samples", "read_samples", "write_samples"]
