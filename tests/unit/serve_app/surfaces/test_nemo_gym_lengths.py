"""NeMo-Gym's length and style terms on the genrm_compare surface: the texts read off a Responses-API object as
nemo-gym reads them, and /compare's rewards against nemo-gym's own aggregate_scores of the same verdicts (/verify's
against /compare's: test_nemo_gym_verify_terms.py)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

pytest.importorskip("ray.serve", reason="the router's metrics need ray[serve]")
pytest.importorskip("resources_servers.genrm_compare.utils", reason="needs the nemo-gym package")

from nemo_gym.openai_utils import (
    NeMoGymResponseOutputMessage,
    NeMoGymResponseOutputText,
    NeMoGymResponseReasoningItem,
    NeMoGymSummary,
)
from resources_servers.genrm_compare import utils as genrm_utils
from stand_in_judges import CONVERSATION, run_app

from serve_app.config import NemoGymSettings
from serve_app.protocols.nemo_gym_api import ResponseObject
from serve_app.serving.nemo_gym_serving import rollout_texts

#: NVIDIA's recipe values (Nemotron 3 Super, stage 3 RLHF), as configs/nemo-gym-recipe.yaml sets them
TERMS = {
    "reasoning_bonus": 0.5,
    "answer_bonus": 0.5,
    "top_percentile": 0.2,
    "group_reasoning_length_penalty_coeff": 0.3,
    "group_answer_length_penalty_coeff": 0.35,
    "group_style_penalty_coeff": 0.05,
}
RECIPE = {"trainers": {"nemo_gym": {"reward_rule": "nemo_gym", **TERMS}}}


def response_obj(answer: str, reasoning: list[str]) -> dict[str, Any]:
    """A rollout as nemo-gym's own models build it: one reasoning item (a summary part per text), then the answer."""
    items: list[Any] = [
        NeMoGymResponseReasoningItem(id="rs", summary=[NeMoGymSummary(text=t, type="summary_text") for t in reasoning]),
        NeMoGymResponseOutputMessage(id="msg", content=[NeMoGymResponseOutputText(text=answer, annotations=[])]),
    ]
    return {"id": "resp", "object": "response", "output": [item.model_dump(mode="json") for item in items]}


texts = st.text(alphabet=st.sampled_from(["a", " ", "\n", "#", "-", "*", "中", "\U0001f600"]), max_size=8)
parts = st.one_of(
    st.builds(lambda t: {"type": "summary_text", "text": t}, texts),
    st.builds(lambda t: {"type": "output_text", "text": t}, texts),
    st.builds(lambda t: {"type": "reasoning_text", "text": t}, texts),
    st.just({"type": "output_text", "text": None}),
    st.just({"type": "refusal", "refusal": "no"}),
    st.just("loose text"),
)
items = st.one_of(
    st.builds(lambda p: {"type": "reasoning", "summary": p}, st.lists(parts, max_size=3)),
    st.builds(
        lambda p, c: {"type": "reasoning", "summary": p, "content": c},
        st.lists(parts, max_size=2),
        st.lists(parts, max_size=2),
    ),
    st.just({"type": "reasoning", "summary": "not a list"}),
    st.builds(lambda p: {"type": "message", "role": "assistant", "content": p}, st.lists(parts, max_size=3)),
    st.just({"type": "function_call", "name": "f", "arguments": "{}"}),
    st.just({"summary": [{"text": "no type"}]}),
)


@settings(max_examples=300, deadline=None)
@given(output=st.lists(items, max_size=5))
def test_texts_are_read_as_nemo_gym_reads_them(output: list[dict[str, Any]]) -> None:
    """Reasoning: every reasoning item's summary parts' text (its content parts not); answer: the message items'
    output_text parts — equal to nemo-gym's extract_from_response_obj on any mix of items and parts."""
    obj = {"output": output}
    ours = rollout_texts(ResponseObject.model_validate(obj))
    assert (ours.reasoning, ours.answer) == genrm_utils.extract_from_response_obj(obj)


def test_compare_gives_nemo_gyms_rewards_for_the_same_verdicts() -> None:
    """Four rollouts of qualities 2, 5, 5, 3 with different reasoning lengths and formatting, judged by the stand-in
    under the recipe's terms: the rewards are what nemo-gym's aggregate_scores computes from the verdicts /compare
    reports and the same response objects; the terms move them off the plain tie-broken means."""
    objs = [
        response_obj("quality 2", ["I weighed it ", "at length, twice over."]),
        response_obj("# Answer\n- quality 5\n- **surely** \U0001f600", ["short"]),
        response_obj("quality 5, plainly said", ["a middling reasoning"]),
        response_obj("quality 3", []),
    ]

    async def go(http: httpx.AsyncClient) -> httpx.Response:
        return await http.post("/compare", json={"conversation_history": CONVERSATION, "response_objs": objs})

    shaped = run_app(go, RECIPE)
    plain = run_app(go, {"trainers": {"nemo_gym": {"reward_rule": "nemo_gym"}}})
    assert shaped.status_code == 200, shaped.text
    out = shaped.json()
    calls = out["comparison_results"]
    rewards, _, base, bonuses = genrm_utils.aggregate_scores(
        comparison_results=[(c["score_1"], c["score_2"], c["ranking"]) for c in calls],
        comparison_metadata=[(c["response_i"], c["response_j"], c["judge_idx"]) for c in calls],
        response_objs=objs,
        aggregator_method="simple_tiebreaker",
        default_score=3.0,
        **TERMS,
    )
    assert out["rewards"] == rewards
    assert plain.json()["rewards"] == base and any(bonuses)


def test_the_terms_need_the_nemo_gym_rule() -> None:
    with pytest.raises(ValidationError, match="reward_rule: nemo_gym"):
        NemoGymSettings(answer_bonus=0.5)
    assert NemoGymSettings(top_percentile=0.5).reward_rule == "ensemble"  # the bar alone shapes nothing
    assert NemoGymSettings(reward_rule="nemo_gym", **TERMS).shaping_active
