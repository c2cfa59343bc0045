"""AReaL: a ``reward_fn`` for its RLVR workflows, and the timeout a generative judge needs there.

AReaL calls ``reward_fn(prompt, completions, prompt_ids, completion_ids, **data)`` once per sample, in a worker
process (so the function must pickle), through ``AsyncRewardWrapper``. Its defaults do not suit a cohort judge:
a 15 s timeout that answers 0 and retries (far below a thinking GenRM's latency, and every retry would be one more
sample in the cohort), and a pool of (CPUs / GPUs) / 2 worker processes — one on a small machine, so the samples of
a group run one after another and each waits out the cohort timeout alone. The workflows build that wrapper
themselves, so :func:`with_timeout` replaces it after the workflow is made:

    from serve_app.client.areal import GenRMReward, with_timeout
    workflow = with_timeout(RLVRWorkflow(reward_fn=GenRMReward("http://genrm:8000", group_size=n), ...), 900, 64)

``prompt`` is the decoded chat-template text; ``data["messages"]`` (the dataset row's own messages), when present,
is used instead of reading the text back.
"""

from __future__ import annotations

from typing import Any

from serve_app.client.http import DEFAULT_TIMEOUT_S, GenRMClient
from serve_app.client.rollouts import conversation_of, response_of


class GenRMReward:
    """A picklable per-sample reward: the rollout's reward from its cohort at ``/v1/reward``.

    ``group_size``: AReaL's ``gconfig.n_samples`` (the rollouts of one prompt); ``principles``: the principle
    judge's principles (default: the router's). A refusal raises, so AReaL logs the service's reason.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        group_size: int | None = None,
        principles: list[str] | None = None,
        token: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.base_url, self.group_size, self.principles = base_url, group_size, principles
        self.token, self.timeout_s = token, timeout_s
        self._client: GenRMClient | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None}  # each worker process opens its own connections

    def __call__(
        self,
        prompt: str,
        completions: str,
        prompt_ids: list[int] | None = None,
        completion_ids: list[int] | None = None,
        **data: Any,
    ) -> float:
        if self._client is None:
            self._client = GenRMClient(self.base_url, token=self.token, timeout_s=self.timeout_s)
        body: dict[str, Any] = {
            "conversation": conversation_of(data.get("messages") or prompt),
            "response": response_of(completions),
        }
        if self.group_size is not None:
            body["group_size"] = self.group_size
        if self.principles is not None:
            body["principles"] = self.principles
        return self._client.reward(body).reward


def with_timeout(workflow: Any, timeout_s: float = DEFAULT_TIMEOUT_S, max_workers: int | None = None) -> Any:
    """Rewrap ``workflow.reward_fn`` in AReaL's ``AsyncRewardWrapper`` with ``timeout_s`` (AReaL's default: 15 s),
    no retries (a retry would be judged as one more rollout) and ``max_workers`` processes: at least a whole group
    must be in flight at once, or a cohort never fills before its timeout. Default: twice the reward's
    ``group_size`` (16 without one); set it to the samples AReaL has in flight. Returns the workflow."""
    from areal.api.reward_api import AsyncRewardWrapper  # AReaL's own; only where AReaL is installed

    if isinstance(workflow.reward_fn, str):
        raise ValueError(
            "pass the reward function itself, not its import path: AReaL wraps a path only when the first episode "
            "runs, after with_timeout"
        )
    if max_workers is None:
        max_workers = 2 * (getattr(workflow.reward_fn, "group_size", None) or 8)
    workflow.async_reward_fn = AsyncRewardWrapper(
        workflow.reward_fn, timeout_seconds=timeout_s, max_workers=max_workers, max_retries=0
    )
    return workflow
