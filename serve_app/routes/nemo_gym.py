"""NVIDIA NeMo-Gym's ``genrm_compare`` resources server, as NeMo-RL and NeMo-Gym's collectors call it.

* ``POST /compare`` — a group at once: ``{conversation_history, response_objs, principle?}`` → ``{rewards,
  comparison_results, metrics}``. Fewer than 2 responses → ``default_score`` each, no judge call.
* ``POST /verify`` — one rollout (what NeMo-RL training calls): the dataset row with ``responses_create_params``
  (its ``input`` is the conversation), ``response``, optional ``principle``, ``_ng_task_index``,
  ``_ng_rollout_index`` and ``prompt_id`` → the row echoed with ``"reward"``. Rollouts of one task wait for each
  other in a cohort keyed by the task index (or ``prompt_id``) and a hash of the input and principle, of
  ``router.trainers.nemo_gym.num_rollouts_per_prompt`` rollouts; without either key, by the input and principle.

Only a response object's final output text (its ``message`` items' ``output_text``) is judged: reasoning items are
dropped, and an object with no output text is judged as :data:`~serve_app.chat_text.EMPTY_RESPONSE`.

Reward rule (``router.trainers.nemo_gym.reward_rule``):

* ``ensemble`` (default): each response's ensemble score by the configured design — ``/v1/rank``'s answer for
  ``/compare``, the ``/v1/reward`` cohort's (``router.cohorts.strategy``) for ``/verify``;
* ``nemo_gym``: NVIDIA's rule (:mod:`policies.nemo_gym`) — circular pairs, each judged once, the pairwise judge
  only, reward = mean helpfulness with the 3.5 − ranking tie-break. The order of each pair is the selection's seeded
  coin (``policies.selection`` spreads the position bias so when pairs are not swapped), not always (i, i+1).
  ``/verify`` under this rule keeps its cohorts in this module's own table (:class:`serve_app.cohorts.Cohorts`,
  judged through ``JudgingService.select``), so it needs one router replica (checked in the configuration).
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from deployments.chat import ChatMessage, Text
from policies.nemo_gym import JudgedPair, NemoGymAggregate, aggregate, pairs_from_comparisons
from serve_app.chat_text import EMPTY_RESPONSE
from serve_app.cohorts import Cohort, CohortRefused, Cohorts, Sample, prompt_fingerprint
from serve_app.config import NemoGymSettings
from serve_app.errors import reject
from serve_app.judging import JudgingService, Selected
from serve_app.metrics import RequestStats, record
from serve_app.protocols import conversation, core_body, reply
from serve_app.routes import Service
from serve_app.schemas import RankRequest, RewardRequest

router = APIRouter(tags=["NeMo-Gym"])


# ---- the protocol's bodies ----------------------------------------------------------------------------------------


class ResponseObject(BaseModel):
    """An OpenAI Responses-API response object; only its ``output`` items are read, the rest is kept as sent."""

    model_config = ConfigDict(extra="allow")

    output: list[dict[str, Any]] = Field(
        default_factory=list, description="output items: 'message' items' output_text is judged, 'reasoning' dropped"
    )


def output_text(obj: ResponseObject) -> str:
    """The final answer: the ``output_text`` parts of the ``message`` items, joined; :data:`EMPTY_RESPONSE` when
    there is none (a rollout that only reasoned, or was cut off)."""
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
    return text if text.strip() else EMPTY_RESPONSE


class GenRMCompareRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    conversation_history: list[dict[str, Any]] = Field(
        min_length=1, description="{role, content} messages ending with the user turn the responses answer"
    )
    response_objs: list[ResponseObject] = Field(description="Responses-API objects, one per candidate")
    principle: Text | None = Field(default=None, description="sent to the pairwise judge as its evaluation plan")


class GenRMCompareMetrics(BaseModel):
    mean_individual_score: float | None = Field(default=None, description="mean of every 1–5 score the judge gave")
    std_individual_score: float | None = Field(default=None, description="their population standard deviation")
    tiebreak_usage_rate: float | None = Field(default=None, description="share of calls whose two scores tied")


class GenRMCompareResponse(BaseModel):
    rewards: list[float] = Field(description="one per response, in request order")
    comparison_results: list[JudgedPair] = Field(description="every judge call, response_i shown first")
    metrics: GenRMCompareMetrics = Field(description="keys without a value (no call made) are left out")


class ResponsesCreateParams(BaseModel):
    """The Responses-API request the rollout answered; its ``input`` (and ``instructions``) is the conversation."""

    model_config = ConfigDict(extra="allow")

    input: str | list[dict[str, Any]] = Field(description="a user message, or the conversation's input items")
    instructions: str | None = None


class VerifyRequest(BaseModel):
    """A NeMo-Gym verify request: the dataset row (any further fields are echoed back) and the rollout."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    responses_create_params: ResponsesCreateParams
    response: ResponseObject
    principle: Text | None = None
    ng_task_index: int | None = Field(default=None, alias="_ng_task_index")
    ng_rollout_index: int | None = Field(default=None, ge=0, alias="_ng_rollout_index")
    prompt_id: str | int | None = None


class VerifyResponse(BaseModel):
    """The request's row as sent, plus the reward."""

    model_config = ConfigDict(extra="allow")

    reward: float


# ---- /compare -----------------------------------------------------------------------------------------------------


def _principle(value: str | None) -> str | None:
    # A blank principle means none (the judge's own evaluation plan), as an omitted one does.
    return value if value is not None and value.strip() else None


def _copies(selected: Selected, rewards: list[float]) -> list[float]:
    """Identical responses are judged once: every copy gets its first occurrence's reward."""
    for group in selected.duplicates:
        for k in group[1:]:
            rewards[k] = rewards[group[0]]
    return rewards


def _nemo_gym_body(conv: list[ChatMessage], texts: list[str], principle: str | None) -> dict[str, Any]:
    # NVIDIA's design: circular pairs, one order each, the pairwise judge alone.
    return {
        "conversation": conv,
        "candidates": texts,
        "strategy": "circular",
        "swap": False,
        "use_principle": False,
        "principle_for_pairwise": principle,
    }


def _nemo_gym_rule(selected: Selected, n: int, settings: NemoGymSettings) -> tuple[NemoGymAggregate, list[JudgedPair]]:
    pairs = pairs_from_comparisons(
        selected.result.comparisons, default_score=settings.default_score, default_ranking=settings.default_ranking
    )
    result = aggregate(n, pairs, default_score=settings.default_score)
    result.rewards = _copies(selected, result.rewards)
    return result, pairs


@router.post(
    "/compare",
    response_model=GenRMCompareResponse,
    summary="NeMo-Gym genrm_compare: rewards for a group of Responses-API objects",
    description="The group judged at once; reward rule router.trainers.nemo_gym.reward_rule ('ensemble': the "
    "configured design's score, as /v1/rank; 'nemo_gym': NVIDIA's circular rule). Fewer than 2 responses: "
    "default_score each. 422: a conversation_history that does not end with a user turn, invalid text.",
)
async def compare(body: GenRMCompareRequest, service: Service) -> Response:
    settings = service.limits.trainers.nemo_gym
    texts = [output_text(o) for o in body.response_objs]
    if len(texts) < 2:
        answer = GenRMCompareResponse(
            rewards=[settings.default_score] * len(texts), comparison_results=[], metrics=GenRMCompareMetrics()
        )
        return reply(service, answer.model_dump_json(exclude_none=True))
    conv = conversation(body.conversation_history, "conversation_history")
    principle = _principle(body.principle)
    stats = RequestStats("nemo_gym_compare")
    if settings.reward_rule == "nemo_gym":
        request = core_body(RankRequest, "request", **_nemo_gym_body(conv, texts, principle))
        selected = await service.select(request, stats)
        result, pairs = _nemo_gym_rule(selected, len(texts), settings)
        rewards = result.rewards
    else:
        request = core_body(
            RankRequest, "request", conversation=conv, candidates=texts, principle_for_pairwise=principle
        )
        selected = await service.select(request, stats)
        rewards = service.rank_response(selected).scores
        # The calls as NeMo-Gym reports them; their metrics describe the judge's scores, not this reward.
        pairs = pairs_from_comparisons(selected.result.comparisons, missing="skip")
        result = aggregate(len(texts), pairs, default_score=settings.default_score)
    answer = GenRMCompareResponse(
        rewards=rewards,
        comparison_results=pairs,
        metrics=GenRMCompareMetrics(
            mean_individual_score=result.mean_individual_score,
            std_individual_score=result.std_individual_score,
            tiebreak_usage_rate=result.tiebreak_usage_rate,
        ),
    )
    return reply(service, answer.model_dump_json(exclude_none=True), stats)


# ---- /verify ------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _CohortPrompt:
    conversation: list[ChatMessage]
    principle: str | None


def _group_id(body: VerifyRequest) -> str | None:
    """NeMo-Gym's cohort key: the task index (else prompt_id) plus a hash of the input and principle; None without
    either, then the cohorts key by the conversation and principle alone."""
    if body.ng_task_index is not None:
        key: list[Any] = ["task", body.ng_task_index]
    elif body.prompt_id is not None:
        key = ["prompt_id", str(body.prompt_id)]
    else:
        return None
    params = body.responses_create_params
    return "nemo-gym/" + prompt_fingerprint([*key, params.input, params.instructions, body.principle])


def _hint(exc: HTTPException, settings: NemoGymSettings) -> HTTPException:
    if exc.status_code in (409, 422) and "group_size" in str(exc.detail):
        detail = (
            f"{exc.detail} (NeMo-Gym: router.trainers.nemo_gym.num_rollouts_per_prompt is "
            f"{settings.num_rollouts_per_prompt}; it must equal the rollouts per task the collector sends, and "
            f"_ng_rollout_index must be below it)"
        )
        return reject(exc.status_code, detail, exc.headers)
    return exc


def _echo(body: VerifyRequest, reward: float) -> str:
    row = body.model_dump(mode="json", by_alias=True, exclude_unset=True)
    answer = {**row, "reward": VerifyResponse(reward=reward).reward}
    # ASCII-escaped: a row may carry text that is not valid UTF-8 (a lone surrogate), echoed as it came.
    return json.dumps(answer, ensure_ascii=True, separators=(",", ":"))


@router.post(
    "/verify",
    response_model=VerifyResponse,
    summary="NeMo-Gym genrm_compare: one rollout's reward, judged with the other rollouts of its task",
    description="Waits until num_rollouts_per_prompt rollouts of the task have arrived (router.trainers.nemo_gym) "
    "or router.cohorts.group_timeout_s has passed, then the cohort is judged once and every caller gets the row it "
    "sent plus 'reward'. Refusals as /v1/reward: 409 a _ng_rollout_index taken by another response, 422 more "
    "rollouts than the group size, 503 with Retry-After when too many cohorts are open.",
)
async def verify(body: VerifyRequest, service: Service, request: Request) -> Response:
    settings = service.limits.trainers.nemo_gym
    params = body.responses_create_params
    items = [{"role": "user", "content": params.input}] if isinstance(params.input, str) else params.input
    conv = conversation(items, "responses_create_params.input", instructions=params.instructions)
    text = output_text(body.response)
    principle = _principle(body.principle)
    group_id = _group_id(body)
    index = body.ng_rollout_index if group_id is not None else None
    stats = RequestStats("nemo_gym_verify")
    try:
        if settings.reward_rule == "nemo_gym":
            reward = await _verify_by_nemo_gym_rule(service, request, conv, text, principle, group_id, index, stats)
        else:
            sample = core_body(
                RewardRequest,
                "request",
                conversation=conv,
                response=text,
                group_id=group_id,
                group_size=settings.num_rollouts_per_prompt,
                rollout_index=index,
                principle_for_pairwise=principle,
            )
            reward = (await service.reward(sample, stats)).reward
    except HTTPException as exc:
        raise _hint(exc, settings) from None
    return reply(service, _echo(body, reward), stats)


def _cohort_table(service: JudgingService, request: Request) -> Cohorts[Selected]:
    """This replica's cohorts for the NeMo-Gym rule, made at the first /verify that needs them."""
    table: Cohorts[Selected] | None = getattr(request.app.state, "nemo_gym_cohorts", None)
    if table is None:

        async def judge(cohort: Cohort[Selected]) -> Selected:
            prompt: _CohortPrompt = cohort.prompt
            texts = [response for _, response in cohort.judged()]
            body = RankRequest.model_validate(_nemo_gym_body(prompt.conversation, texts, prompt.principle))
            stats = RequestStats("nemo_gym_verify_cohort")
            selected = await service.select(body, stats, admitted=True)  # let in as a whole: wait, never 503
            record(service.metrics, stats)
            return selected

        table = Cohorts(service.limits.cohorts, judge)
        request.app.state.nemo_gym_cohorts = table
    return table


async def _verify_by_nemo_gym_rule(
    service: JudgingService,
    request: Request,
    conv: list[ChatMessage],
    text: str,
    principle: str | None,
    group_id: str | None,
    index: int | None,
    stats: RequestStats,
) -> float:
    limits = service.limits
    settings = limits.trainers.nemo_gym
    if not limits.cohorts.enabled:
        raise reject(404, "per-sample rewards are off in this deployment (router.cohorts.enabled: false); use /compare")
    size = settings.num_rollouts_per_prompt
    if size > limits.max_candidates:
        raise reject(422, f"group_size {size}; this service judges groups of 1 to {limits.max_candidates} rollouts")
    started = time.perf_counter()
    # Checked here, so that the cohort's judging (which builds the same body) cannot fail on it.
    core_body(RankRequest, "request", **_nemo_gym_body(conv, [text], principle))
    fingerprint = prompt_fingerprint([[[m.role, m.content] for m in conv], principle])
    sample = Sample(
        response=text,
        fingerprint=fingerprint,
        prompt=_CohortPrompt(conv, principle),
        group_id=group_id,
        group_size=size,
        rollout_index=index,
    )
    table = _cohort_table(service, request)
    too_long = [t for t in [text, *(m.content for m in conv), principle or ""] if len(t) > limits.max_text_chars]
    try:
        if too_long:
            table.join(sample, judged=False)  # it arrived: its cohort must not wait for it
            raise reject(422, f"a text has {len(too_long[0])} characters; at most {limits.max_text_chars} are allowed")
        ticket = table.join(sample)
    except CohortRefused as exc:
        headers = {"Retry-After": str(limits.retry_after_s)} if exc.retry_after else None
        stats.status = str(exc.status)
        record(service.metrics, stats)
        raise reject(exc.status, exc.message, headers) from None
    outcome = await ticket.outcome()
    selected = outcome.result
    assert selected is not None  # this sample was judged
    result, _ = _nemo_gym_rule(selected, len(outcome.indices), settings)
    stats.status, stats.latency_s = "200", time.perf_counter() - started
    return result.rewards[ticket.position(outcome)]
