"""NVIDIA NeMo-Gym's ``genrm_compare`` resources server, as NeMo-RL and NeMo-Gym's collectors call it: serving.

* ``POST /compare`` — a group at once: ``{conversation_history, response_objs, principle?}`` → ``{rewards,
  comparison_results, metrics}``. Fewer than 2 responses → ``default_score`` each, no judge call.
* ``POST /verify`` — one rollout (what NeMo-RL training calls): the dataset row with ``responses_create_params``
  (its ``input`` is the conversation), ``response``, optional ``principle``, ``_ng_task_index``,
  ``_ng_rollout_index`` and ``prompt_id`` → the row echoed with ``"reward"``. Rollouts of one task wait for each
  other in a cohort keyed by the task index (or ``prompt_id``) and a hash of the input and principle, of
  ``router.trainers.nemo_gym.num_rollouts_per_prompt`` rollouts; without either key, by the input and principle.

Only a response object's final output text (its ``message`` items' ``output_text``) is judged, and an object with
no output text is judged as :data:`~serve_app.chat_text.EMPTY_RESPONSE`. Reasoning items are never judged; NeMo-Gym's
length and style terms measure their summaries and the answer (:func:`rollout_texts`).

Reward rule (``router.trainers.nemo_gym.reward_rule``):

* ``ensemble`` (default): each response's ensemble score by the configured design — ``/v1/rank``'s answer for
  ``/compare``, the ``/v1/reward`` cohort's (``router.cohorts.strategy``) for ``/verify``;
* ``nemo_gym``: NVIDIA's rule (:mod:`policies.nemo_gym`) — circular pairs, each judged once, the pairwise judge
  only, reward = mean helpfulness with the 3.5 − ranking tie-break. The order of each pair is the selection's seeded
  coin (``policies.selection`` spreads the position bias so when pairs are not swapped), not always (i, i+1).
  ``/verify`` under this rule goes through the core's per-sample path with the rule plugged in
  (:mod:`serve_app.core.reward_rules`): the same cohort table as ``/v1/reward``, its cohorts kept apart by the rule.

NeMo-Gym's length and style terms (``reasoning_bonus``, ``answer_bonus``, ``group_*_coeff``; ``nemo_gym`` rule only)
apply on both routes, over the group the rule got, as NeMo-Gym computes them over the group it is sent:

* ``/compare``: every response of the request;
* ``/verify``: each rollout brings its texts (:func:`rollout_texts`) with its sample, to its cohort on whichever
  replica owns it, and the cohort's rule reads them in rollout-index order. A full cohort's rewards equal
  ``/compare``'s for the same rollouts in that order. A cohort closed by its timeout is the group of the rollouts
  that arrived and were judged (NeMo-Gym would fail the group instead): the terms, the bonuses' bar included, are
  relative to those alone, exactly as ``/compare`` of those rollouts, and a rollout refused on its own (a 422 for
  it alone) is not part of it. A rollout to be masked (too few usable verdicts) stays in the group, as in NeMo-Gym,
  where a call without a verdict counts with the defaults: its reward from those defaults enters the bar and its
  lengths the weights, so the other rollouts get ``/compare``'s rewards; its own reward is then the mean of the
  cohort's valid (shaped) rewards, and the row says ``mask_sample``.
"""

from __future__ import annotations

import json
from typing import Any

from deployments.chat import ChatMessage
from policies.nemo_gym import RolloutTexts, aggregate, pairs_from_comparisons
from serve_app.chat_text import EMPTY_RESPONSE
from serve_app.config import NemoGymSettings
from serve_app.core.cohorts import prompt_fingerprint
from serve_app.core.refusal import Refusal
from serve_app.core.reward_rules import NEMO_GYM_DESIGN, nemo_gym_rewards
from serve_app.core.service import JudgingService
from serve_app.core.stats import RequestStats
from serve_app.protocols.genrm_api import RankRequest, RewardRequest, RewardResponse
from serve_app.protocols.nemo_gym_api import (
    GenRMCompareMetrics,
    GenRMCompareRequest,
    GenRMCompareResponse,
    ResponseObject,
    VerifyRequest,
    VerifyResponse,
)
from serve_app.serving.trainer_inputs import conversation, core_body


def _answer(obj: ResponseObject) -> str:
    """The ``output_text`` parts of the ``message`` items, joined (a message whose content is one string counts
    whole); empty when there are none."""
    text = ""
    for item in obj.output:
        if item.get("type") != "message":
            continue
        content = item.get("content")
        if isinstance(content, str):
            text += content
        elif isinstance(content, list):
            text += "".join(
                part["text"]
                for part in content
                if isinstance(part, dict) and part.get("type") == "output_text" and isinstance(part.get("text"), str)
            )
    return text


def output_text(obj: ResponseObject) -> str:
    """The final answer as judged: :func:`_answer`, or :data:`EMPTY_RESPONSE` when it is blank (a rollout that
    only reasoned, or was cut off)."""
    text = _answer(obj)
    return text if text.strip() else EMPTY_RESPONSE


def rollout_texts(obj: ResponseObject) -> RolloutTexts:
    """What NeMo-Gym's length and style terms read, as NeMo-Gym reads it: the ``text`` of every part of the
    ``summary`` of every ``reasoning`` item, joined (an item's ``content`` is not read), and the answer
    (:func:`_answer`: empty, not the stand-in, when there is none)."""
    reasoning = "".join(
        part["text"]
        for item in obj.output
        if item.get("type") == "reasoning" and isinstance(item.get("summary"), list)
        for part in item["summary"]
        if isinstance(part, dict) and isinstance(part.get("text"), str)
    )
    return RolloutTexts(reasoning=reasoning, answer=_answer(obj))


def _principle(value: str | None) -> str | None:
    # A blank principle means none (the judge's own evaluation plan), as an omitted one does.
    return value if value is not None and value.strip() else None


def _group_id(body: VerifyRequest) -> str | None:
    """NeMo-Gym's cohort key: its group id (NeMo-Gym >= 0.7), else the task index (else prompt_id) plus a hash of
    the input and principle, each with the group's attempt, so a retried group never mixes with the attempt it
    replaces; None without any, then the cohorts key by the conversation and principle alone."""
    params = body.responses_create_params
    if body.ng_group_id is not None:
        key: list[Any] = ["group", body.ng_group_id]
    elif body.ng_task_index is not None:
        key = ["task", body.ng_task_index]
    elif body.prompt_id is not None:
        key = ["prompt_id", str(body.prompt_id)]
    else:
        return None
    return "nemo-gym/" + prompt_fingerprint(
        [*key, body.ng_group_attempt, params.input, params.instructions, body.principle]
    )


def _hint(exc: Refusal, settings: NemoGymSettings) -> Refusal:
    if exc.status in (409, 422) and "group_size" in exc.message:
        return exc.with_message(
            f"{exc.message} (NeMo-Gym: router.trainers.nemo_gym.num_rollouts_per_prompt is "
            f"{settings.num_rollouts_per_prompt}; it must equal the rollouts per task the collector sends, and "
            f"_ng_rollout_index must be below it)"
        )
    return exc


def _mask(answer: RewardResponse) -> dict[str, Any]:
    """A rollout no judgement stands behind, marked as NeMo-Gym marks a failed judge (``mask_sample``, also under
    ``instance_config`` for older NeMo-RL readers): NeMo-RL then leaves it out of the loss and the metrics.

    The kind comes from NeMo-Gym's vocabulary (``nemo_gym.failure_kinds``): ``judge_failed`` when calls about the
    rollout got no answer (an error, a timeout, a judge that is down), ``judge_unparseable`` when the answers came
    but could not be read. A failed call also gets the routing keys NeMo-Gym's own judge failsafe adds, so NeMo-Gym's
    rollout collection files the row with its failures (out of the aggregates, retried on resume)."""
    if answer.valid:
        return {}
    row = answer.candidate
    reason = (
        f"{row.verdicts} of the {row.planned_verdicts} judge verdicts planned for this rollout were usable "
        f"(router.selection.min_verdict_share), {row.unanswered_calls} calls got no answer; the reward is its "
        f"cohort's mean valid reward (0.0 when none is valid)"
    )
    if not row.unanswered_calls:
        return {"mask_sample": True, "failure_kind": "judge_unparseable", "failure_reason": reason}
    return {
        "mask_sample": True,
        "failure_kind": "judge_failed",
        "failure_reason": reason,
        "_ng_failure_class": "judge_failed",
        "_ng_failure_judge_error": reason,
    }


def _echo(body: VerifyRequest, reward: float, mask: dict[str, Any] | None = None) -> str:
    row = body.model_dump(mode="json", by_alias=True, exclude_unset=True)
    # NeMo-Gym >= 0.7 reads the group's attempt back from every answer, sent or not
    answer = {**row, "_ng_group_attempt": body.ng_group_attempt, "reward": VerifyResponse(reward=reward).reward}
    if mask:
        config = row.get("instance_config")
        answer |= {**mask, "instance_config": {**(config if isinstance(config, dict) else {}), "mask_sample": True}}
    # ASCII-escaped: a row may carry text that is not valid UTF-8 (a lone surrogate), echoed as it came.
    return json.dumps(answer, ensure_ascii=True, separators=(",", ":"))


class NemoGymServing:
    """``/compare`` and ``/verify`` for one replica (see the module docstring)."""

    def __init__(self, service: JudgingService) -> None:
        self.service = service  # the tenant comes in each call's stats
        self.settings = service.limits.trainers.nemo_gym

    async def compare(self, body: GenRMCompareRequest, stats: RequestStats) -> GenRMCompareResponse:
        settings = self.settings
        texts = [output_text(o) for o in body.response_objs]
        if len(texts) < 2:
            return GenRMCompareResponse(
                rewards=[settings.default_score] * len(texts), comparison_results=[], metrics=GenRMCompareMetrics()
            )
        conv = conversation(body.conversation_history, "conversation_history")
        principle = _principle(body.principle)
        fields: dict[str, Any] = {"conversation": conv, "candidates": texts, "principle_for_pairwise": principle}
        if settings.reward_rule == "nemo_gym":
            selected = await self.service.select(core_body(RankRequest, "request", **fields, **NEMO_GYM_DESIGN), stats)
            rollouts = [rollout_texts(o) for o in body.response_objs]
            result, pairs = nemo_gym_rewards(selected, len(texts), settings, rollouts)
            rewards = result.rewards
        else:
            selected = await self.service.select(core_body(RankRequest, "request", **fields), stats)
            rewards = self.service.rank_response(selected).scores
            # The calls as NeMo-Gym reports them; their metrics describe the judge's scores, not this reward.
            pairs = pairs_from_comparisons(selected.result.comparisons, missing="skip")
            result = aggregate(len(texts), pairs, default_score=settings.default_score)
        return GenRMCompareResponse(
            rewards=rewards,
            comparison_results=pairs,
            metrics=GenRMCompareMetrics(
                mean_individual_score=result.mean_individual_score,
                std_individual_score=result.std_individual_score,
                tiebreak_usage_rate=result.tiebreak_usage_rate,
            ),
        )

    async def verify(self, body: VerifyRequest, stats: RequestStats) -> str:
        """The row as sent plus its reward, as JSON text."""
        params = body.responses_create_params
        items = [{"role": "user", "content": params.input}] if isinstance(params.input, str) else params.input
        conv: list[ChatMessage] = conversation(items, "responses_create_params.input", instructions=params.instructions)
        group_id = _group_id(body)
        sample = core_body(
            RewardRequest,
            "request",
            conversation=conv,
            response=output_text(body.response),
            group_id=group_id,
            group_size=self.settings.num_rollouts_per_prompt,
            rollout_index=body.ng_rollout_index if group_id is not None else None,
            principle_for_pairwise=_principle(body.principle),
        )
        try:
            # The texts travel only when a term reads them (a reasoning summary can be long).
            rollout = rollout_texts(body.response) if self.settings.shaping_active else None
            answer = await self.service.reward(sample, stats, rule=self.settings.reward_rule, rollout=rollout)
        except Refusal as exc:
            raise _hint(exc, self.settings) from None
        return _echo(body, answer.reward, _mask(answer))
