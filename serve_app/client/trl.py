"""TRL: a GRPO reward function whose rewards come from the service.

    from serve_app.client.trl import GRPOReward
    trainer = GRPOTrainer(model=..., reward_funcs=[GRPOReward("http://genrm:8000", num_generations=8)], ...)

TRL calls ``reward_funcs`` with the whole generation batch, each prompt repeated ``num_generations`` times in a
row (TRL does not pass that number, hence the argument). Each whole group goes to ``/v1/rank`` as one request,
the groups of a batch concurrently, and a completion's reward is its ensemble score in its group. A group that the
batch holds only part of (its other completions are on another process) goes to ``/v1/reward`` sample by sample,
with ``group_size=num_generations``, so the router's cohort judges the pieces of all processes together. GRPO
normalises rewards within each group, which is the scale the scores share.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from serve_app.client.http import DEFAULT_TIMEOUT_S, AsyncGenRMClient, ServiceError
from serve_app.client.rollouts import (
    Completion,
    LoopClients,
    Prompt,
    consecutive_groups,
    conversation_of,
    response_of,
)
from serve_app.protocols.genrm_api import RankResponse, RewardResponse

#: Called with the group's positions in the batch and the service's answer(s), e.g. to log the judges' details.
OnResponse = Callable[[range, RankResponse | list[RewardResponse]], None]


class GRPOReward:
    """An async reward function for ``GRPOTrainer(reward_funcs=[...])`` (TRL >= 1.0 awaits async callables).

    ``num_generations``: GRPOConfig's value; without it every run of equal prompts counts as one whole group.
    ``options``: /v1/rank fields for every group (``principles``, ``strategy``, ``swap``, ``use_principle``, …).
    ``on_error``: "raise" stops the step with the service's reason; "none" gives the group's completions None
    (TRL turns None into NaN, i.e. "this reward does not apply", and averages the other reward functions).
    A completion the service marks invalid (too few usable verdicts) gets None too. TRL drops a row only when every
    reward function gave it None, so masking holds when this is the only reward function.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        num_generations: int | None = None,
        token: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        on_error: Literal["raise", "none"] = "raise",
        on_response: OnResponse | None = None,
        name: str = "genrm",
        **options: Any,
    ) -> None:
        if num_generations is not None and num_generations < 1:
            raise ValueError(f"num_generations must be >= 1, got {num_generations}")
        if on_error not in ("raise", "none"):
            raise ValueError(f"on_error must be 'raise' or 'none', got {on_error!r}")
        self.num_generations = num_generations
        self.on_error = on_error
        self.on_response = on_response
        self.options: Mapping[str, Any] = options
        self.__name__ = name  # TRL logs rewards/<name>/mean
        self._clients = LoopClients(lambda: AsyncGenRMClient(base_url, token=token, timeout_s=timeout_s))

    async def __call__(
        self,
        prompts: Sequence[Prompt],
        completions: Sequence[Completion],
        completion_ids: Sequence[Sequence[int]] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        client = self._clients.get()
        rewards: list[float | None] = [None] * len(prompts)
        groups = consecutive_groups(prompts, self.num_generations)
        await asyncio.gather(*(self._group(client, prompts, completions, g, whole, rewards) for g, whole in groups))
        return rewards

    async def _group(
        self,
        client: AsyncGenRMClient,
        prompts: Sequence[Prompt],
        completions: Sequence[Completion],
        positions: range,
        whole: bool,
        rewards: list[float | None],
    ) -> None:
        conversation = conversation_of(prompts[positions[0]])
        texts = [response_of(completions[i]) for i in positions]
        principles = {k: v for k, v in self.options.items() if k in ("principles", "principle_for_pairwise")}
        try:
            if whole:
                ranked = await client.rank(conversation=conversation, candidates=texts, **self.options)
                scores: list[float | None] = [
                    s if ok else None for s, ok in zip(ranked.scores, ranked.valid, strict=True)
                ]
                answer: RankResponse | list[RewardResponse] = ranked
            else:
                replies = await asyncio.gather(
                    *(
                        client.reward(
                            conversation=conversation, response=t, group_size=self.num_generations, **principles
                        )
                        for t in texts
                    )
                )
                scores, answer = [r.reward if r.valid else None for r in replies], list(replies)
        except ServiceError:
            if self.on_error == "raise":
                raise
            return
        for i, score in zip(positions, scores, strict=True):
            rewards[i] = score
        if self.on_response is not None:
            self.on_response(positions, answer)
