"""Whether a candidate's score rests on enough judging to be used as a reward.

A judge call that fails — an error, a timeout, an answer that cannot be read — leaves a candidate's score at what
the fit gives for no evidence: the Bradley–Terry prior, the mean of the others. Read as a reward, that number is a
fabricated low (or middling) value, and training on it degrades the run. So each candidate carries its support:

* ``planned_k`` — the verdicts its design asked for: ``calls_per_pair`` (2 with both orders, else 1) for each pair
  the design scheduled that contains ``k``, plus 1 when the principle judge was asked about it;
* ``verdicts_k`` — the verdicts that came back usable: the orders of those pairs with a readable verdict, plus 1 when
  its principle reward was read;
* ``valid_k ⇔ planned_k = 0 or verdicts_k ≥ max(1, ⌈share · planned_k⌉)``.

Where a protocol cannot carry the mark, an invalid candidate's reward is the mean of its group's valid rewards
(:func:`neutral_fill`): its advantage is then about 0, so it pushes the policy nowhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from policies.debias import Comparison


def verdict_support(
    n: int,
    comparisons: Sequence[Comparison],
    calls_per_pair: int,
    principle_asked: bool,
    principle_read: Sequence[bool],
    share: float,
) -> tuple[list[int], list[int], list[bool]]:
    """(verdicts, planned, valid) per candidate, as the module docstring defines them."""
    planned = [int(principle_asked)] * n
    verdicts = [int(principle_asked and principle_read[k]) for k in range(n)]
    for c in comparisons:
        for k in (c.i, c.j):
            planned[k] += calls_per_pair
            verdicts[k] += c.orders
    valid = [p == 0 or v >= max(1, math.ceil(share * p - 1e-9)) for v, p in zip(verdicts, planned, strict=True)]
    return verdicts, planned, valid


def neutral_fill(rewards: Sequence[float], valid: Sequence[bool]) -> list[float]:
    """``rewards`` with each invalid entry replaced by the mean of the valid ones (0.0 when none is valid)."""
    kept = [r for r, ok in zip(rewards, valid, strict=True) if ok]
    mean = sum(kept) / len(kept) if kept else 0.0
    return [r if ok else mean for r, ok in zip(rewards, valid, strict=True)]
