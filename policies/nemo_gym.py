"""NeMo-Gym's reward rule for a group of rollouts (its ``genrm_compare`` server), as pure arithmetic.

NVIDIA's RLHF recipe judges each pair of a circular design (i, i+1 mod N) once, in one order, and reads the pairwise
GenRM's two 1–5 helpfulness scores and its 1–6 ranking. The rule, per judged pair shown as (first, second):

* when the two scores are equal, the ranking breaks the tie: ``adj = 3.5 − ranking``, the first response's score
  gains ``adj`` and the second's loses it (ranking 1–3 favours the first, 4–6 the second);
* a response's reward is the mean of its (adjusted) scores over the pairs it took part in, ``default_score`` when
  it took part in none;
* the metrics are the mean and population standard deviation of every score as the judge gave it (before
  tie-breaks), and the share of pairs whose scores tied.

A call that produced no verdict counts with NeMo-Gym's defaults (each score ``default_score``, ranking
``default_ranking``), and a verdict missing one of the three numbers takes that number's default, as NeMo-Gym does.

Then NeMo-Gym's length and style terms (:class:`NemoGymShaping`, its ``genrm_compare`` keys and defaults; all off
by default), on the group's rewards in this order (:func:`shape`, which states the arithmetic):

1. ``reasoning_bonus`` to the response with the shortest non-empty reasoning, and ``answer_bonus`` to the one with
   the shortest non-empty answer, each only when that response's reward is among the ``top_percentile`` best;
2. the group-relative length terms, ``group_reasoning_length_penalty_coeff`` and
   ``group_answer_length_penalty_coeff`` times a zero-centred weight that is highest for the shortest;
3. the style term, ``group_style_penalty_coeff`` times the same weight of the answers' style density (markdown
   headers, list items, bold spans and emoji per character, :func:`style_density`).

Lengths are characters (code points) of the stripped text, as NeMo-Gym measures them: the reasoning is the text of
the rollout's reasoning items' summaries, the answer its final output text (:class:`RolloutTexts`).

:func:`pairs_from_comparisons` turns the selection's :class:`~policies.debias.Comparison` records into judged pairs
(one per order that was judged); :func:`aggregate` applies the rule. No Ray, no HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from policies.debias import Comparison
from policies.verdicts import RANKING_MIDPOINT, PairVerdict

#: NeMo-Gym's defaults for a call without a verdict (its ``default_score`` / ``default_ranking``)
DEFAULT_SCORE = 3.0
DEFAULT_RANKING = RANKING_MIDPOINT


class JudgedPair(BaseModel):
    """One pairwise call as NeMo-Gym reports it: ``response_i`` was shown first, ``response_j`` second."""

    model_config = ConfigDict(frozen=True)

    response_i: int
    response_j: int
    judge_idx: int = Field(default=0, description="which judging pass of the pair (NeMo-Gym can judge a pair k times)")
    score_1: float = Field(description="helpfulness 1–5 of response_i, as the judge gave it")
    score_2: float = Field(description="helpfulness 1–5 of response_j, as the judge gave it")
    ranking: float = Field(description="1–6: 1–3 prefer response_i, 4–6 response_j")


class NemoGymAggregate(BaseModel):
    rewards: list[float]
    mean_individual_score: float | None = Field(description="None when no pair was judged")
    std_individual_score: float | None = Field(description="population standard deviation; None without pairs")
    tiebreak_usage_rate: float | None = Field(description="share of pairs whose scores tied; None without pairs")


def _pair(
    first: int, second: int, verdict: PairVerdict | None, default_score: float, default_ranking: float
) -> JudgedPair:
    def value(x: float | None, default: float) -> float:
        return default if x is None else float(x)

    return JudgedPair(
        response_i=first,
        response_j=second,
        score_1=value(verdict and verdict.score_1, default_score),
        score_2=value(verdict and verdict.score_2, default_score),
        ranking=value(verdict and verdict.ranking, default_ranking),
    )


def pairs_from_comparisons(
    comparisons: Sequence[Comparison],
    *,
    default_score: float = DEFAULT_SCORE,
    default_ranking: float = DEFAULT_RANKING,
    missing: Literal["default", "skip"] = "default",
) -> list[JudgedPair]:
    """Every judged order of every comparison as a pair in the order the judge saw it: the forward call shows
    (i, j), the backward call (j, i). A comparison with no verdict in either order becomes one (i, j) pair of
    defaults (``missing="default"``, NeMo-Gym's fallback) or is left out (``"skip"``)."""
    pairs: list[JudgedPair] = []
    for c in comparisons:
        if c.forward is None and c.backward is None:
            if missing == "default":
                pairs.append(_pair(c.i, c.j, None, default_score, default_ranking))
            continue
        if c.forward is not None:
            pairs.append(_pair(c.i, c.j, c.forward, default_score, default_ranking))
        if c.backward is not None:
            pairs.append(_pair(c.j, c.i, c.backward, default_score, default_ranking))
    return pairs


def aggregate(n: int, pairs: Sequence[JudgedPair], *, default_score: float = DEFAULT_SCORE) -> NemoGymAggregate:
    """NeMo-Gym's rewards for responses ``0..n-1`` from their judged pairs (see the module docstring)."""
    if n < 0:
        raise ValueError("n must be non-negative")
    totals = np.zeros(n)
    counts = np.zeros(n)
    raw = np.empty(2 * len(pairs))
    ties = 0
    for k, p in enumerate(pairs):
        if not (0 <= p.response_i < n and 0 <= p.response_j < n):
            raise ValueError(f"pair {k} names response {p.response_i} or {p.response_j}, outside 0..{n - 1}")
        raw[2 * k], raw[2 * k + 1] = p.score_1, p.score_2
        first, second = p.score_1, p.score_2
        if first == second:
            ties += 1
            adj = RANKING_MIDPOINT - p.ranking
            first, second = first + adj, second - adj
        totals[p.response_i] += first
        totals[p.response_j] += second
        counts[p.response_i] += 1
        counts[p.response_j] += 1
    judged = counts > 0
    rewards = np.full(n, float(default_score))
    rewards[judged] = totals[judged] / counts[judged]
    return NemoGymAggregate(
        rewards=[float(r) for r in rewards],
        mean_individual_score=float(raw.mean()) if pairs else None,
        std_individual_score=float(raw.std()) if pairs else None,
        tiebreak_usage_rate=ties / len(pairs) if pairs else None,
    )


# ---- NeMo-Gym's length and style terms ------------------------------------------------------------------------


class NemoGymShaping(BaseModel):
    """NeMo-Gym's length and style terms under its ``genrm_compare`` names, with its defaults (every term off)."""

    reasoning_bonus: float = Field(
        default=0.0,
        ge=0.0,
        allow_inf_nan=False,
        description="added to the response with the group's shortest non-empty reasoning when its reward is among "
        "the top_percentile best (0: off)",
    )
    answer_bonus: float = Field(
        default=0.0,
        ge=0.0,
        allow_inf_nan=False,
        description="added to the response with the group's shortest non-empty answer when its reward is among the "
        "top_percentile best (0: off)",
    )
    top_percentile: float = Field(
        default=0.2,
        ge=0.0,
        le=1.0,
        description="the bonuses' bar: a reward at least the int(N × top_percentile)-th best of the N (the best "
        "when that is 0)",
    )
    group_reasoning_length_penalty_coeff: float = Field(
        default=0.0,
        ge=0.0,
        allow_inf_nan=False,
        description="times each response's zero-centred reasoning-length weight, highest for the shortest (0: off)",
    )
    group_answer_length_penalty_coeff: float = Field(
        default=0.0,
        ge=0.0,
        allow_inf_nan=False,
        description="times each response's zero-centred answer-length weight, highest for the shortest (0: off)",
    )
    group_style_penalty_coeff: float = Field(
        default=0.0,
        ge=0.0,
        allow_inf_nan=False,
        description="times each response's zero-centred weight of its answer's style density (markdown headers, list "
        "items, bold, emoji per character), highest for the plainest (0: off)",
    )

    @property
    def shaping_active(self) -> bool:
        """Any term is on (``top_percentile`` alone changes nothing)."""
        terms = (
            self.reasoning_bonus,
            self.answer_bonus,
            self.group_reasoning_length_penalty_coeff,
            self.group_answer_length_penalty_coeff,
            self.group_style_penalty_coeff,
        )
        return any(t > 0 for t in terms)


class RolloutTexts(BaseModel):
    """What the length and style terms read of one response, as NeMo-Gym extracts it from a Responses-API object."""

    model_config = ConfigDict(frozen=True)

    reasoning: str = Field(default="", description="the text of its reasoning items' summaries, joined")
    answer: str = Field(default="", description="its final output text; empty when it gave none")


#: fenced code, left out of the style count and of the length it is divided by: ``` up to the next ```
_FENCED_CODE = re.compile(r"```.*?```", re.DOTALL)
#: the style markers NeMo-Gym counts (Arena-Hard's): headers, ordered and unordered list items, bold (** and __);
#: each pattern is counted on its own, so the counts add up as NeMo-Gym's do
_STYLE_MARKERS = (
    re.compile(r"^#{1,6}\s", re.MULTILINE),
    re.compile(r"^\s*\d+\.\s", re.MULTILINE),
    re.compile(r"^\s*[-*+]\s", re.MULTILINE),
    re.compile(r"\*\*[^*\n]+\*\*"),
    re.compile(r"__[^_\n]+__"),
)
#: the code points NeMo-Gym counts as emoji, one each: the union of its ranges. One of them runs from U+24C2 to
#: U+1F251, so CJK ideographs, kana, Hangul and the private-use area count too; kept so, to give NeMo-Gym's numbers.
_EMOJI_RANGES = ((0x24C2, 0x1F251), (0x1F300, 0x1F64F), (0x1F680, 0x1F6FF), (0x1F900, 0x1FAFF))
_EMOJI = re.compile("[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _EMOJI_RANGES) + "]")


def style_density(text: str) -> float:
    """Style markers per character: with fenced code removed, the number of headers, list items, bold spans and
    emoji code points, divided by the length of what is left once stripped; 0 when nothing is left."""
    plain = _FENCED_CODE.sub("", text)
    chars = len(plain.strip())
    if chars == 0:
        return 0.0
    markers = sum(len(p.findall(plain)) for p in _STYLE_MARKERS) + len(_EMOJI.findall(plain))
    return markers / chars


def _smallest_first_weights(values: Sequence[float]) -> list[float]:
    """``1 − (v − min) / (max − min)`` per value (1 for the smallest, 0 for the largest) minus the mean of those;
    all 0 when the values are equal. Summed left to right, as NeMo-Gym sums them, so the floats agree exactly."""
    low, high = min(values), max(values)
    if low == high:
        return [0.0] * len(values)
    raw = [1.0 - (v - low) / (high - low) for v in values]
    mean = sum(raw) / len(raw)
    return [w - mean for w in raw]


def shape(rewards: Sequence[float], rollouts: Sequence[RolloutTexts], shaping: NemoGymShaping) -> list[float]:
    """NeMo-Gym's length and style terms added to a group's rewards (``rollouts[k]`` is response ``k``'s texts).

    With ``r`` the rewards, N ≥ 2 responses (a smaller group is returned as it is), reasoning and answer lengths
    ``len(text.strip())`` in characters, and ``bar`` the ``max(0, int(N × top_percentile) − 1)``-th of ``r`` sorted
    from the best (0-based), in this order:

    1. the response with the shortest non-empty reasoning (the first such on a tie) gains ``reasoning_bonus`` if its
       reward is ≥ ``bar``; then the same for the shortest non-empty answer and ``answer_bonus``. This is the
       group's shortest, rewarded only when it is a top scorer — not the shortest among the top scorers;
    2. when either length coefficient is on, every response gains ``w_reasoning × group_reasoning_length_penalty_coeff
       + w_answer × group_answer_length_penalty_coeff``, the ``w`` being :func:`_smallest_first_weights` of the
       lengths (empty texts included, as length 0). They sum to 0 over the group: the short gain what the long lose;
    3. when ``group_style_penalty_coeff`` is on, every response gains ``w × group_style_penalty_coeff``, ``w`` the
       same weights of the answers' :func:`style_density`.
    """
    n = len(rewards)
    if len(rollouts) != n:
        raise ValueError(f"{len(rollouts)} rollouts for {n} rewards")
    out = [float(r) for r in rewards]
    if n < 2:
        return out
    reasoning = [len(r.reasoning.strip()) for r in rollouts]
    answer = [len(r.answer.strip()) for r in rollouts]
    bar = sorted(out, reverse=True)[max(0, int(n * shaping.top_percentile) - 1)]
    for bonus, lengths in ((shaping.reasoning_bonus, reasoning), (shaping.answer_bonus, answer)):
        nonempty = [k for k in range(n) if lengths[k] > 0]
        if bonus > 0 and nonempty:
            shortest = min(nonempty, key=lengths.__getitem__)
            if out[shortest] >= bar:
                out[shortest] += bonus
    reasoning_coeff = shaping.group_reasoning_length_penalty_coeff
    answer_coeff = shaping.group_answer_length_penalty_coeff
    if reasoning_coeff > 0 or answer_coeff > 0:
        weights = zip(_smallest_first_weights(reasoning), _smallest_first_weights(answer), strict=True)
        for k, (w_reasoning, w_answer) in enumerate(weights):
            out[k] += w_reasoning * reasoning_coeff + w_answer * answer_coeff
    if shaping.group_style_penalty_coeff > 0:
        densities = [style_density(r.answer) for r in rollouts]
        for k, w in enumerate(_smallest_first_weights(densities)):
            out[k] += w * shaping.group_style_penalty_coeff
    return out
