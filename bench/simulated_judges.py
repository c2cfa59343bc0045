"""Simulated judges with a latent quality per candidate: the standard model for measuring selectors.

Each candidate has a latent quality q_i ~ N(0, 1). The pairwise judge perceives the two responses it is shown
with independent noise and a position bias b in favour of the first:

    p_first  = s·q_first  + b/2 + e_1,      p_second = s·q_second − b/2 + e_2,      e_k ~ N(0, ½)

so that the margin m = p_first − p_second = s·(q_first − q_second) + b + ε with ε ~ N(0, 1). The ranking is m
quantised at −2, −1, 0, 1, 2 (m > 2 → 1 "first much better", …, m ≤ −2 → 6), and each helpfulness score is its
perception quantised at −1.5, −0.5, 0.5, 1.5 onto 1..5. The principle judge returns y = s·q + ε, ε ~ N(0, 1).
With s = 0.707 and b = 0.5 one call picks the better response ~73% of the time, and the two orders of a pair
agree ~60% of the time — close to published LLM judges.

Variants: the bias b, heavy-tailed noise (Student-t with 3 degrees of freedom, scaled to unit variance), a share
of calls that fail to parse, and judges fitted to real both-order verdicts (``FITTED``, bench/judge_fit.py). Those
need one more term: a share ρ of the noise belongs to the pair, drawn once per pair and repeated, with its sign, in
both orders and on every call — a real judge that misreads a pair misreads it either way:

    m = s·(q_first − q_second) + b + u_pair + ε,      u_pair ~ N(0, ρ),  ε ~ N(0, 1 − ρ)

(split between the two perceptions as ±u/2, so the helpfulness scores carry it too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from policies.verdicts import PairVerdict, PairwiseResult, PrincipleResult

RANKING_CUTS = np.array([2.0, 1.0, 0.0, -1.0, -2.0])  # m above the k-th cut → ranking k + 1
SCORE_CUTS = np.array([-1.5, -0.5, 0.5, 1.5])


@dataclass(frozen=True)
class JudgeModel:
    """Parameters of the simulated judges."""

    name: str = "base"
    strength: float = 0.707  # s: how much quality shows through the noise
    bias: float = 0.5  # b: added to the first-shown response's margin
    noise: str = "normal"  # "normal" | "t3" (heavy-tailed) | "none"
    parse_failure: float = 0.0  # share of calls whose answer cannot be read
    pair_noise: float = 0.0  # ρ: share of the noise's variance drawn once per pair, the same in both orders


#: Fitted by bench/judge_fit.py to the published JudgeBench judgments (both orders per pair) and frozen here; its
#: report (bench/results/judge_fit.md) says whether a refit still gives these.
FITTED = {
    # o1-mini (Arena-Hard prompt), an LLM judge: stronger than the base judge at JudgeBench's difficulty, less biased
    # to the first position, a third of its noise the pair's own
    "judgebench_o1_mini": JudgeModel(name="judgebench_o1_mini", strength=0.759, bias=0.198, pair_noise=0.327),
    # Skywork-Reward-Gemma-2-27B, a reward model: the same verdict in both orders (its noise all the pair's), no bias
    "judgebench_skywork_rm": JudgeModel(name="judgebench_skywork_rm", strength=0.394, bias=-0.016, pair_noise=0.995),
    # our CPU quality config's judge (Qwen2.5-Coder-1.5B), its own verdicts collected by `serve_app evaluate`
    # on JudgeBench's hard pairs: no better than chance, and biased to the first shown
    "cpu_quality_qwen_1_5b": JudgeModel(name="cpu_quality_qwen_1_5b", strength=0.035, bias=0.254, pair_noise=0.0),
}

VARIANTS = {
    "base": JudgeModel(),
    "no_bias": JudgeModel(name="no_bias", bias=0.0),
    "strong_bias": JudgeModel(name="strong_bias", bias=1.5),
    "heavy_tail": JudgeModel(name="heavy_tail", noise="t3"),
    "parse_fail_10": JudgeModel(name="parse_fail_10", parse_failure=0.10),
    **FITTED,
}


def ranking_from_margin(m: float) -> int:
    return 1 + int(np.sum(m <= RANKING_CUTS))


def score_from_perception(p: float) -> int:
    return 1 + int(np.sum(p > SCORE_CUTS))


class SimulatedJudges:
    """A pairwise and a principle judge over fixed qualities; every call draws fresh noise from ``rng``."""

    def __init__(self, quality: Sequence[float], model: JudgeModel, rng: np.random.Generator) -> None:
        self.quality = np.asarray(quality, dtype=np.float64)
        self.model = model
        self.rng = rng
        self.pairwise_calls = 0
        self.principle_calls = 0
        self._pair_errors: dict[tuple[int, int], float] = {}

    def _noise(self, scale: float) -> float:
        if self.model.noise == "none":
            return 0.0
        if self.model.noise == "t3":
            return float(self.rng.standard_t(3) / np.sqrt(3.0) * scale)
        return float(self.rng.normal(0.0, scale))

    def _pair_error(self, first: int, second: int) -> float:
        """u for this order of the pair: drawn once per pair (for the lower index first), negated when swapped."""
        if self.model.pair_noise <= 0:
            return 0.0
        key = (min(first, second), max(first, second))
        if key not in self._pair_errors:
            self._pair_errors[key] = float(self.rng.normal(0.0, np.sqrt(self.model.pair_noise)))
        return self._pair_errors[key] if first < second else -self._pair_errors[key]

    def _fails(self) -> bool:
        return self.model.parse_failure > 0 and bool(self.rng.random() < self.model.parse_failure)

    def perceive(self, first: int, second: int) -> tuple[float, float]:
        """One call's two perceptions (p_first, p_second), before they are quantised into a verdict."""
        s, b = self.model.strength, self.model.bias
        u = self._pair_error(first, second)
        call = np.sqrt(0.5 * (1.0 - self.model.pair_noise))  # each perception's own noise
        p1 = s * self.quality[first] + b / 2 + u / 2 + self._noise(call)
        p2 = s * self.quality[second] - b / 2 - u / 2 + self._noise(call)
        return p1, p2

    async def pairwise(self, first: int, second: int) -> PairwiseResult:
        self.pairwise_calls += 1
        p1, p2 = self.perceive(first, second)
        if self._fails():
            return PairwiseResult(failure="simulated parse failure", raw_text="<unreadable>")
        verdict = PairVerdict(
            score_1=score_from_perception(p1),
            score_2=score_from_perception(p2),
            ranking=ranking_from_margin(p1 - p2),
        )
        return PairwiseResult(verdict=verdict)

    async def principle(self, index: int) -> list[PrincipleResult]:
        self.principle_calls += 1
        if self._fails():
            return [PrincipleResult(principle="helpfulness", failure="simulated parse failure")]
        y = self.model.strength * self.quality[index] + self._noise(1.0)
        return [PrincipleResult(principle="helpfulness", reward=y)]
