"""TRL's own GRPOTrainer with fault injection: one completion of the group cannot be judged, the service marks it
invalid, GRPOReward gives it None, and TRL (the GenRM its only reward function) drops it from the group's baseline:
its advantage is exactly 0 and the other completions' advantages are those of the group without it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from stand_in_judges import QualityClient, served, stand_in_service

from serve_app.client.trl import GRPOReward
from serve_app.ingress.asgi import build_api

pytest.importorskip("trl")
pytest.importorskip("datasets")
BROKEN = "quality 9"
GROUP = 4


class Injected:
    """Between TRL and GRPOReward: gives completion k the stand-in quality k, and the first one the text the judge
    cannot read (the fault)."""

    __name__ = "genrm"

    def __init__(self, inner: GRPOReward) -> None:
        self.inner = inner

    async def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float | None]:
        marked = [f"{c} {BROKEN}" if k % GROUP == 0 else f"{c} quality {k % GROUP}" for k, c in enumerate(completions)]
        return await self.inner(prompts, marked, **kwargs)


def test_a_masked_completion_moves_nothing_and_leaves_the_others_advantages_alone(tmp_path: Path) -> None:
    import torch
    from trl.trainer.utils import nanstd

    from bench.trl_grpo import grpo_trainer, tiny_policy
    from serve_app.local_service import cpu_default_model_folder

    judge = QualityClient(breaks_on=lambda prompt: BROKEN in prompt)
    app = build_api(stand_in_service(client=judge))
    returned: list[list[float | None]] = []
    with served(app) as base:
        inner = GRPOReward(base, num_generations=GROUP, strategy="round_robin")

        class Recorded(Injected):
            async def __call__(self, *args: Any, **kwargs: Any) -> list[float | None]:
                rewards = await super().__call__(*args, **kwargs)
                returned.append(rewards)
                return rewards

        model, tokenizer = tiny_policy(cpu_default_model_folder())
        trainer = grpo_trainer(
            model, tokenizer, Recorded(inner), tmp_path, steps=1, generations=GROUP, chat=False, questions=["2 + 2?"]
        )
        trainer.train()

    (rewards,) = returned
    assert rewards[0] is None and all(isinstance(r, float) for r in rewards[1:])
    advantages = list(trainer._logs["advantages"])  # TRL's own record of the step's advantages
    assert advantages[0] == 0.0
    kept = torch.tensor(rewards[1:])
    alone = (kept - kept.mean()) / (nanstd(kept) + 1e-4)  # the group without the masked completion
    assert advantages[1:] == pytest.approx(alone.tolist(), abs=1e-5)
    assert any(abs(a) > 0.1 for a in advantages[1:])  # a real signal, not zeros all round
