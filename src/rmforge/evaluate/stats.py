"""Statistics for reward-model evaluation: Wilson and seeded bootstrap intervals, length diagnostics.

* :func:`wilson_ci`: the Wilson score interval of a 0/1 accuracy (``k`` of ``n``), through
  ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``. It never collapses to a point:
  28/28 gives [0.879, 1], 27/28 gives [0.823, 0.994] (the percentile bootstrap gave [1, 1] and
  [0.893, 1]). :func:`accuracy_with_ci` uses it whenever every value is 0 or 1.
* :func:`bootstrap_ci`: percentile bootstrap of the mean, vectorised in numpy. Values taking few
  distinct levels (0/1 correctness, 0/0.5/1 baseline credit) are resampled through multinomial
  counts, which has exactly the distribution of resampling the values themselves at O(levels) per
  replicate; other values are resampled by index in memory-bounded chunks.
* Length baselines on pairs: "longer response wins" / "shorter response wins" (length = characters
  of the response text, equal lengths give 0.5), the Pearson/Spearman correlation of reward with
  response length, and the model's accuracy within length-matched pairs
  (``|len_c - len_r| / max(len_c, len_r) <= 0.1``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

LENGTH_MATCH_TOLERANCE = 0.1
_MAX_LEVELS = 16
_CHUNK_CELLS = 1 << 22  # indices drawn per chunk in the index bootstrap


@dataclass(frozen=True)
class Accuracy:
    """A mean with its interval (Wilson for 0/1 values, else bootstrap) and the number of items behind it."""

    accuracy: float
    ci_low: float
    ci_high: float
    n: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.accuracy:.4f} [{self.ci_low:.4f}, {self.ci_high:.4f}] (n={self.n})"


def bootstrap_ci(values: Iterable[float], n_boot: int = 1000, alpha: float = 0.05,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap ``(low, high)`` of the mean at level ``1 - alpha``; NaN for no values."""
    x = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=np.float64).ravel()
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    n = x.size
    if n == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    levels, counts = np.unique(x, return_counts=True)
    if levels.size == 1:
        return float(levels[0]), float(levels[0])
    if levels.size <= _MAX_LEVELS:
        draws = rng.multinomial(n, counts / n, size=n_boot)
        means = draws @ levels / n
    else:
        rows = max(1, _CHUNK_CELLS // n)
        means = np.concatenate([x[rng.integers(0, n, size=(min(rows, n_boot - i), n))].mean(axis=1)
                                for i in range(0, n_boot, rows)])
    low, high = np.percentile(means, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def wilson_ci(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval ``(low, high)`` of ``k`` successes in ``n`` trials; NaN for ``n = 0``."""
    from scipy.stats import binomtest

    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n == 0:
        return math.nan, math.nan
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=1 - alpha, method="wilson")
    return float(ci.low), float(ci.high)


def is_binary(values: np.ndarray) -> bool:
    """Whether every value is exactly 0 or 1 (a plain accuracy, where the Wilson interval applies)."""
    return bool(np.all((values == 0) | (values == 1)))


def accuracy_with_ci(correct: Iterable[float], n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> Accuracy:
    """Mean of per-item credits with its interval: Wilson when every credit is 0 or 1, else (fractional
    credits such as 0.5 for a length tie) the seeded percentile bootstrap."""
    x = np.asarray(list(correct), dtype=np.float64)
    if x.size == 0:
        return Accuracy(math.nan, math.nan, math.nan, 0)
    if is_binary(x):
        low, high = wilson_ci(int(x.sum()), int(x.size), alpha)
    else:
        low, high = bootstrap_ci(x, n_boot, alpha, seed)
    return Accuracy(float(x.mean()), low, high, int(x.size))


def longer_wins(len_chosen: Sequence[float], len_rejected: Sequence[float]) -> np.ndarray:
    """Per-pair credit of "the longer response wins": 1, 0 or 0.5 for equal lengths."""
    c, r = np.asarray(len_chosen, dtype=np.float64), np.asarray(len_rejected, dtype=np.float64)
    return np.where(c > r, 1.0, np.where(c < r, 0.0, 0.5))


def shorter_wins(len_chosen: Sequence[float], len_rejected: Sequence[float]) -> np.ndarray:
    """Per-pair credit of "the shorter response wins" (``1 - longer_wins``)."""
    return 1.0 - longer_wins(len_chosen, len_rejected)


def length_matched(len_chosen: Sequence[float], len_rejected: Sequence[float],
                   tolerance: float = LENGTH_MATCH_TOLERANCE) -> np.ndarray:
    """Mask of pairs whose lengths differ by at most ``tolerance`` of the longer one."""
    c, r = np.asarray(len_chosen, dtype=np.float64), np.asarray(len_rejected, dtype=np.float64)
    return np.abs(c - r) <= tolerance * np.maximum(c, r)  # two empty responses match


def length_baselines(len_chosen: Sequence[float], len_rejected: Sequence[float], n_boot: int = 1000,
                     alpha: float = 0.05, seed: int = 0) -> dict[str, Accuracy]:
    """``{"longer_wins": Accuracy, "shorter_wins": Accuracy}`` on the given pairs."""
    return {"longer_wins": accuracy_with_ci(longer_wins(len_chosen, len_rejected), n_boot, alpha, seed),
            "shorter_wins": accuracy_with_ci(shorter_wins(len_chosen, len_rejected), n_boot, alpha, seed)}


def length_matched_accuracy(correct: Sequence[float], len_chosen: Sequence[float], len_rejected: Sequence[float],
                            n_boot: int = 1000, alpha: float = 0.05, seed: int = 0,
                            tolerance: float = LENGTH_MATCH_TOLERANCE) -> Accuracy:
    """The model's accuracy restricted to length-matched pairs."""
    mask = length_matched(len_chosen, len_rejected, tolerance)
    return accuracy_with_ci(np.asarray(correct, dtype=np.float64)[mask], n_boot, alpha, seed)


def length_correlation(rewards: Sequence[float], lengths: Sequence[float]) -> dict[str, float]:
    """Pearson and Spearman correlation of reward with response length (NaN when undefined)."""
    from scipy import stats

    r, n = np.asarray(rewards, dtype=np.float64), np.asarray(lengths, dtype=np.float64)
    ok = np.isfinite(r) & np.isfinite(n)
    r, n = r[ok], n[ok]
    if r.size < 3 or np.ptp(r) == 0 or np.ptp(n) == 0:
        return {"pearson": math.nan, "spearman": math.nan, "n": int(r.size)}
    return {"pearson": float(stats.pearsonr(r, n).statistic), "spearman": float(stats.spearmanr(r, n).statistic),
            "n": int(r.size)}
