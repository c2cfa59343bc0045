"""The same seed and the same judge answers give the same choice, whatever order the answers arrive in."""

from __future__ import annotations

import asyncio
import hashlib
import random

import pytest

from policies.selection import SelectionConfig, select_best
from policies.verdicts import PairVerdict, PairwiseResult, PrincipleResult


def _h(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "big")


class Deterministic:
    """Answers are a pure function of the call (as with a fixed engine seed); each answer arrives after a random
    delay, so calls of one round complete in a different order on every run."""

    def __init__(self, jitter_seed: int) -> None:
        self.jitter = random.Random(jitter_seed)

    async def pairwise(self, i: int, j: int) -> PairwiseResult:
        await asyncio.sleep(self.jitter.random() * 0.002)
        h = _h("pair", i, j)
        if h % 11 == 0:
            return PairwiseResult(failure="unreadable", raw_text="?")  # failures too must replay identically
        return PairwiseResult(
            verdict=PairVerdict(score_1=1 + h % 5, score_2=1 + (h >> 8) % 5, ranking=1 + (h >> 16) % 6)
        )

    async def principle(self, k: int) -> list[PrincipleResult]:
        await asyncio.sleep(self.jitter.random() * 0.002)
        reward = (_h("principle", k) % 1000) / 100 - 5
        return [PrincipleResult(principle="p", reward=reward, yes_logprob=0.0, no_logprob=-reward)]


@pytest.mark.parametrize("strategy", ["circular", "knockout", "swiss", "round_robin", "adaptive"])
def test_same_seed_same_answers_same_result(strategy: str) -> None:
    def run(jitter_seed: int, seed: int = 7):
        judges = Deterministic(jitter_seed)
        config = SelectionConfig(strategy=strategy, seed=seed)
        return asyncio.run(select_best(13, judges.pairwise, judges.principle, config))

    first = run(jitter_seed=1).model_dump(exclude={"elapsed_s"})
    for jitter_seed in (2, 3):
        assert run(jitter_seed).model_dump(exclude={"elapsed_s"}) == first
