"""Left-to-right sums of many short runs, vectorised: the floating-point result of a Python ``+=`` loop.

numpy's ``add.reduce``/``reduceat`` sum runs of 8 or more values pairwise, which can differ in the last bit
from pycocoevalcap's loops; these helpers add term ``j`` of every run in step ``j``, so each run is summed
``((0.0 + t0) + t1) + ...`` exactly as Python does.
"""

from __future__ import annotations

import numpy as np


def sequential_sums(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
                    stride: np.ndarray | int = 1) -> np.ndarray:
    """``out[r] = 0.0 + values[starts[r]] + values[starts[r] + stride[r]] + ...`` (``lengths[r]`` terms), in order.

    Example:
        >>> sequential_sums(np.array([1.0, 1e16, -1e16, 5.0]), np.array([0, 3]), np.array([3, 1])).tolist()
        [0.0, 5.0]
    """
    n = len(starts)
    out = np.zeros(n, dtype=np.float64)
    if n == 0:
        return out
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    run_len = lengths[order]
    longest = int(run_len[0])
    if longest == 0:
        return out
    pos = np.asarray(starts, dtype=np.int64)[order]
    step = np.broadcast_to(np.asarray(stride, dtype=np.int64), (n,))[order]
    # active[j]: how many runs (longest first) have a term j
    active = n - np.cumsum(np.bincount(run_len, minlength=longest + 1))[:longest]
    acc = np.zeros(n, dtype=np.float64)
    for j in range(longest):
        m = int(active[j])
        acc[:m] += values[pos[:m]]
        pos[:m] += step[:m]
    out[order] = acc
    return out
