"""veRL: a ``compute_score`` that asks the service for each rollout's reward.

veRL has no remote reward URL; it calls a custom ``compute_score(data_source, solution_str, ground_truth,
extra_info)`` once per rollout (an ``async def`` is awaited) and gives it only the response text. So the question
must travel in the dataset's ``extra_info`` (``question``, ``prompt`` or ``messages``: a string or a message list),
and each rollout goes to the cohort route ``/v1/reward``: the router holds the ``group_size`` rollouts of a prompt
(``actor_rollout_ref.rollout.n``) until all have arrived, judges them together and answers each. Point veRL at it:

    custom_reward_function.path=<site-packages>/serve_app/client/verl.py
    custom_reward_function.name=compute_score
    +custom_reward_function.reward_kwargs.base_url=http://genrm:8000
    +custom_reward_function.reward_kwargs.group_size=8

``extra_info["group_id"]``, when the data carries one, names the group instead of the prompt text.
"""

from __future__ import annotations

import os
from typing import Any

from serve_app.client.http import DEFAULT_TIMEOUT_S, AsyncGenRMClient
from serve_app.client.rollouts import LoopClients, conversation_of, response_of

_QUESTION_KEYS = ("question", "prompt", "messages")
_clients: dict[tuple[str | None, float], LoopClients] = {}


def _client(base_url: str | None, timeout_s: float) -> AsyncGenRMClient:
    key = (base_url, timeout_s)
    if key not in _clients:
        _clients[key] = LoopClients(lambda: AsyncGenRMClient(base_url, timeout_s=timeout_s))
    return _clients[key].get()


def question_of(extra_info: dict[str, Any] | None) -> Any:
    for key in _QUESTION_KEYS:
        if extra_info and extra_info.get(key):
            return extra_info[key]
    raise ValueError(
        "veRL passes compute_score only the response: put the question in the dataset's extra_info under one of "
        f"{', '.join(_QUESTION_KEYS)} (a string or a list of chat messages)"
    )


async def compute_score(
    data_source: str | None,
    solution_str: str,
    ground_truth: Any = None,
    extra_info: dict[str, Any] | None = None,
    *,
    base_url: str | None = None,
    group_size: int | None = None,
    principles: list[str] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    **_: Any,
) -> dict[str, Any]:
    """This rollout's reward from its cohort: ``{"score", "rank", "size_judged", "complete"}``; veRL trains on
    ``score`` and logs the rest. ``group_size`` defaults to ``GENRM_GROUP_SIZE``, else the router's own."""
    if group_size is None and os.environ.get("GENRM_GROUP_SIZE"):
        group_size = int(os.environ["GENRM_GROUP_SIZE"])
    body: dict[str, Any] = {
        "conversation": conversation_of(question_of(extra_info)),
        "response": response_of(solution_str),
    }
    if group_size is not None:
        body["group_size"] = group_size
    if principles is not None:
        body["principles"] = principles
    if extra_info and extra_info.get("group_id") is not None:
        body["group_id"] = str(extra_info["group_id"])
    reply = await _client(base_url, timeout_s).reward(body)
    # veRL's score is a number (no mask): an invalid rollout's is its cohort's mean valid reward; "valid" goes to
    # reward_extra_info, where it is logged beside the score.
    return {
        "score": reply.reward,
        "rank": reply.rank,
        "size_judged": reply.size_judged,
        "complete": reply.complete,
        "valid": reply.valid,
    }
