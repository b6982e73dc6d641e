"""Built-in converters from upstream dataset layouts to canonical samples (importing registers them).

Names (the ``rmforge data convert --from NAME`` contract): hh-rlhf, helpsteer2-pointwise,
helpsteer2-pairwise, ultrafeedback, rewardbench, rewardbench2, rm-bench, judgebench,
preference, pointwise.
"""

from rmforge.data.converters import benchmarks, generic, helpsteer2, hh_rlhf, ultrafeedback  # noqa: F401
from rmforge.data.converters._common import count_prefix_mismatches
from rmforge.data.converters.hh_rlhf import hh_rlhf_mismatch_count, parse_transcript
from rmforge.data.converters.helpsteer2 import split_prompt

__all__ = ["count_prefix_mismatches", "hh_rlhf_mismatch_count", "parse_transcript", "split_prompt"]
