"""Static row shapes for packed forwards on the GPU (issue 17).

A compiled FlexAttention kernel (and its compiled block-mask builder) is specialised for every new
row shape, so packed forwards that run through it use a few fixed shapes: one row of width ``W``
holding the whole micro-batch, ``W`` taken from a small set of widths (multiples of the 128-token
FlexAttention block). The widths are fitted to the run itself: the token counts of every
micro-batch the run will take are known before it starts (the batch order is a function of the
seed, the epoch and the lengths), and :func:`plan_widths` picks the ``count`` widths that pad them
least (an exact dynamic programme over the sorted counts). A count above the largest width (a
later run, a server request) is rounded up to a multiple of the largest width, so shapes stay few.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

BLOCK = 128
MAX_WIDTHS = 4
"""Default number of row widths (compilations of the kernel a run, training and validation together)."""


def round_up(n: int, multiple: int = BLOCK) -> int:
    """``n`` rounded up to a multiple of ``multiple`` (at least one multiple)."""
    return max(multiple, -(-int(n) // multiple) * multiple)


def plan_widths(totals: Iterable[int], count: int = MAX_WIDTHS, multiple: int = BLOCK) -> list[int]:
    """At most ``count`` row widths (ascending, multiples of ``multiple``) that cover every total in
    ``totals`` with the least padding, ``sum(width_for(t) - t)``; the largest covers the largest total."""
    if count < 1:
        raise ValueError(f"count must be >= 1, not {count}")
    values = sorted({round_up(t, multiple) for t in totals})
    if not values:
        return []
    if len(values) <= count:
        return values
    weight: dict[int, int] = {}
    for t in totals:
        w = round_up(t, multiple)
        weight[w] = weight.get(w, 0) + 1
    counts = [weight[v] for v in values]
    n = len(values)
    # cost[i][j]: padding of covering values[i..j] by width values[j]
    prefix_n, prefix_s = [0], [0]
    for v, c in zip(values, counts):
        prefix_n.append(prefix_n[-1] + c)
        prefix_s.append(prefix_s[-1] + c * v)

    def cost(i: int, j: int) -> int:
        return values[j] * (prefix_n[j + 1] - prefix_n[i]) - (prefix_s[j + 1] - prefix_s[i])

    inf = float("inf")
    best = [[inf] * n for _ in range(count + 1)]  # best[k][j]: values[0..j] covered by k widths, top = values[j]
    back = [[-1] * n for _ in range(count + 1)]
    for j in range(n):
        best[1][j] = cost(0, j)
    for k in range(2, count + 1):
        for j in range(n):
            for i in range(j):  # previous width = values[i]; this one covers values[i+1..j]
                c = best[k - 1][i] + cost(i + 1, j)
                if c < best[k][j]:
                    best[k][j], back[k][j] = c, i
    k = min(range(1, count + 1), key=lambda k: best[k][n - 1])
    widths, j = [], n - 1
    while j >= 0 and k >= 1:
        widths.append(values[j])
        j, k = back[k][j], k - 1
    return sorted(widths)


def width_for(total: int, widths: Sequence[int], multiple: int = BLOCK) -> int:
    """The smallest planned width that holds ``total`` tokens; above the largest, ``total`` rounded up to
    a multiple of the largest width (or of ``multiple`` without a plan)."""
    for w in widths:
        if w >= total:
            return w
    return round_up(total, widths[-1] if widths else multiple)


def geometric_widths(budget: int, smallest: int = 512) -> list[int]:
    """Widths for an open-ended stream (a server): ``smallest`` doubled up to ``budget`` (inclusive)."""
    widths, w = [], round_up(smallest)
    while w < budget:
        widths.append(w)
        w *= 2
    return widths + [round_up(budget)]
