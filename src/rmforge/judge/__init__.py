"""Generative reward models (LLM judges): prompt templates, verdict parsers, reward functions, verl glue.

- :mod:`rmforge.judge.templates`: pointwise / pairwise judge prompts (built-in or user files), chat rendering;
- :mod:`rmforge.judge.parse`: robust parsing of ``<score>``, ``<preference>`` and ``<think>`` answers;
- :mod:`rmforge.judge.rewards`: reward callables for TRL's GRPOTrainer and rmforge, plus their statistics;
- :mod:`rmforge.judge.data`: judge training examples from exported judge files or canonical samples;
- :mod:`rmforge.judge.lm`: causal-LM loading and batched greedy generation;
- :mod:`rmforge.judge.verl`: verl ``compute_score`` and the verl job writer / checker.
"""
