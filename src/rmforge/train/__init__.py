"""Train stage: reward-model trainers."""
