"""NeMo-Gym's length and style terms (policies/nemo_gym.py: shape, style_density) by hand, and against the installed
nemo-gym package's own aggregation (resources_servers.genrm_compare.utils.aggregate_scores) on generated groups."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from policies.nemo_gym import JudgedPair, NemoGymShaping, RolloutTexts, aggregate, shape, style_density

genrm_utils = pytest.importorskip("resources_servers.genrm_compare.utils", reason="needs the nemo-gym package")

#: NVIDIA's recipe (Nemotron 3 Super, stage 3 RLHF)
RECIPE = NemoGymShaping(
    reasoning_bonus=0.5,
    answer_bonus=0.5,
    top_percentile=0.2,
    group_reasoning_length_penalty_coeff=0.3,
    group_answer_length_penalty_coeff=0.35,
    group_style_penalty_coeff=0.05,
)


def texts(reasoning: str, answer: str) -> RolloutTexts:
    return RolloutTexts(reasoning=reasoning, answer=answer)


def test_length_terms_computed_by_hand() -> None:
    """Rewards 4, 3, 5, 2; reasoning lengths 3, 4, 0, 6; answer lengths 8, 2, 4, 2; top_percentile 0.5: the bar is
    the int(4 × 0.5) = 2nd best, 4.

    * reasoning bonus: the shortest non-empty reasoning is response 0's (3), reward 4 ≥ 4: 4 + 0.5 = 4.5;
    * answer bonus: the shortest non-empty answer is response 1's (2, the first of two), reward 3 < 4: none —
      response 2 is a top scorer with a longer answer (4) and gets nothing either;
    * reasoning weights: 1 − l/6 = 1/2, 1/3, 1, 0, mean 11/24: 1/24, −3/24, 13/24, −11/24, times 0.3;
    * answer weights: 1 − (l − 2)/6 = 0, 1, 2/3, 1, mean 2/3: −2/3, 1/3, 0, 1/3, times 0.35."""
    shaping = NemoGymShaping(
        reasoning_bonus=0.5,
        answer_bonus=0.5,
        top_percentile=0.5,
        group_reasoning_length_penalty_coeff=0.3,
        group_answer_length_penalty_coeff=0.35,
    )
    rollouts = [texts("a" * 3, "b" * 8), texts("a" * 4, "b" * 2), texts("  ", "b" * 4), texts("a" * 6, "b" * 2)]
    expected = [
        4.5 + 0.3 / 24 - 0.35 * 2 / 3,
        3.0 - 0.3 * 3 / 24 + 0.35 / 3,
        5.0 + 0.3 * 13 / 24,
        2.0 - 0.3 * 11 / 24 + 0.35 / 3,
    ]
    assert shape([4.0, 3.0, 5.0, 2.0], rollouts, shaping) == pytest.approx(expected)


def test_style_term_favours_the_plainest_answer() -> None:
    """Densities 0 (plain), 2/12 (a header and a list item in 12 characters): weights 1/2 and −1/2, times 0.05."""
    plain, styled = "just a sentence", "# T\n- item x"
    assert style_density(styled) == 2 / len(styled)
    out = shape([3.0, 3.0], [texts("", plain), texts("", styled)], NemoGymShaping(group_style_penalty_coeff=0.05))
    assert out == pytest.approx([3.025, 2.975])


def test_off_by_default_and_for_a_group_of_one() -> None:
    rollouts = [texts("long reasoning", "# a"), texts("r", "b")]
    assert shape([4.0, 2.0], rollouts, NemoGymShaping()) == [4.0, 2.0]
    assert not NemoGymShaping().shaping_active and NemoGymShaping(top_percentile=0.9).shaping_active is False
    assert shape([4.0], rollouts[:1], RECIPE) == [4.0]
    with pytest.raises(ValueError, match="1 rollouts for 2 rewards"):
        shape([4.0, 2.0], rollouts[:1], RECIPE)


def test_style_density_as_nemo_gym_counts() -> None:
    assert style_density("") == 0.0 and style_density("```\n# only code\n```") == 0.0
    assert style_density("```\n# not a header\n```\nplain") == 0.0  # fenced code is neither counted nor measured
    text = "## H\n1. one\n* two\n**bold** __also__ \U0001f600"
    assert style_density(text) == 6 / len(text)
    assert style_density("中文") == 1.0  # NeMo-Gym's emoji ranges span CJK: kept, to give its numbers


@pytest.mark.parametrize(
    "field",
    ["reasoning_bonus", "answer_bonus", "group_reasoning_length_penalty_coeff", "group_style_penalty_coeff"],
)
def test_negative_terms_are_refused(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        NemoGymShaping.model_validate({field: -0.1})


def test_top_percentile_is_a_share() -> None:
    with pytest.raises(ValidationError, match="top_percentile"):
        NemoGymShaping(top_percentile=1.5)


# ---- against nemo-gym's own aggregate_scores ---------------------------------------------------------------------

#: pieces answers are made of: every style marker NeMo-Gym counts, near misses, fenced code, emoji range edges
FRAGMENTS = [
    "plain words. ",
    "# Header\n",
    "###### six\n",
    "####### seven\n",
    "#no space\n",
    "- dash item\n",
    "* star item\n",
    "+ plus item\n",
    "  - indented\n",
    "1. first\n",
    "12. twelfth\n",
    "1.no space\n",
    "**bold**",
    "** not bold\n**",
    "__under__",
    "```\n# fenced header\n- fenced item\n```\n",
    "```",
    "`",
    "\n",
    "\n\n",
    " ",
    "\t",
    "中文",
    "한",
    "\ue000",
    *(chr(c) for c in (0x24C1, 0x24C2, 0x2600, 0x27BF, 0x1F251, 0x1F252, 0x1F300, 0x1F64F, 0x1F650, 0x1F680)),
    *(chr(c) for c in (0x1F6FF, 0x1F700, 0x1F8FF, 0x1F900, 0x1FAFF, 0x1FB00)),
]
answers = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), max_size=12).map("".join),
    st.text(max_size=40),
)
reasonings = st.one_of(st.just(""), st.sampled_from(["  \n", "a", "ab", "abc"]), st.text(max_size=30))
scores = st.one_of(st.sampled_from([1.0, 2.0, 3.0, 4.0, 5.0]), st.floats(1.0, 5.0))
rankings = st.one_of(st.sampled_from([1.0, 2.0, 3.0, 3.5, 4.0, 5.0, 6.0]), st.floats(1.0, 6.0))
terms = st.one_of(st.just(0.0), st.sampled_from([0.05, 0.3, 0.35, 0.5]), st.floats(0.0, 2.0))


@st.composite
def groups(draw: st.DrawFn) -> tuple[list[RolloutTexts], list[JudgedPair], NemoGymShaping, float]:
    n = draw(st.integers(2, 16))
    rollouts = [texts(draw(reasonings), draw(answers)) for _ in range(n)]
    circular = [(i, (i + 1) % n) for i in range(n)]
    others = st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)).filter(lambda p: p[0] != p[1])
    # NeMo-Gym's circular design (possibly judged k times), or any pairs: some responses may be in none
    design = draw(st.one_of(st.just(circular * draw(st.integers(1, 2))), st.lists(others, max_size=2 * n)))
    pairs = [
        JudgedPair(response_i=i, response_j=j, score_1=draw(scores), score_2=draw(scores), ranking=draw(rankings))
        for i, j in design
    ]
    shaping = NemoGymShaping(
        reasoning_bonus=draw(terms),
        answer_bonus=draw(terms),
        top_percentile=draw(st.one_of(st.sampled_from([0.0, 0.2, 0.25, 0.5, 1.0]), st.floats(0.0, 1.0))),
        group_reasoning_length_penalty_coeff=draw(terms),
        group_answer_length_penalty_coeff=draw(terms),
        group_style_penalty_coeff=draw(terms),
    )
    return rollouts, pairs, shaping, draw(st.sampled_from([3.0, 2.5]))


def response_obj(rollout: RolloutTexts) -> dict[str, Any]:
    """As NeMo-Gym's vLLM model server returns a rollout: a reasoning item with the reasoning as its summary, then
    the answer message."""
    return {
        "output": [
            {"type": "reasoning", "id": "rs", "summary": [{"type": "summary_text", "text": rollout.reasoning}]},
            {"type": "message", "id": "msg", "content": [{"type": "output_text", "text": rollout.answer}]},
        ]
    }


@settings(max_examples=400, deadline=None)
@given(group=groups())
def test_rewards_equal_nemo_gyms_own_aggregation(
    group: tuple[list[RolloutTexts], list[JudgedPair], NemoGymShaping, float],
) -> None:
    """Scores, rankings, lengths and style markers drawn at random: our tie-broken means plus the terms equal, to
    the last bit, what nemo-gym's aggregate_scores gives for the same verdicts and response objects."""
    rollouts, pairs, shaping, default_score = group
    theirs, metrics, base, _ = genrm_utils.aggregate_scores(
        comparison_results=[(p.score_1, p.score_2, p.ranking) for p in pairs],
        comparison_metadata=[(p.response_i, p.response_j, p.judge_idx) for p in pairs],
        response_objs=[response_obj(r) for r in rollouts],
        aggregator_method="simple_tiebreaker",
        default_score=default_score,
        **shaping.model_dump(),
    )
    ours = aggregate(len(rollouts), pairs, default_score=default_score)
    assert ours.rewards == base
    assert shape(ours.rewards, rollouts, shaping) == theirs
    assert ours.tiebreak_usage_rate == metrics.get("tiebreak_usage_rate")
    for style, answer in zip(map(style_density, (r.answer for r in rollouts)), rollouts, strict=True):
        assert style == genrm_utils.compute_style_density(answer.answer)
