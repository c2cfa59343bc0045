"""Soft verdicts: the ranking belief from logprobs, its margin, and how the selection uses it."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from deployments.engine_client import Completion
from deployments.pairwise.judge import PairwiseJudge, PairwiseSettings
from deployments.pairwise.logprobs import ranking_belief, score_belief, with_beliefs
from deployments.pairwise.parse import parse_pairwise
from policies.debias import combine_orders
from policies.selection import SelectionConfig, select_best
from policies.verdicts import (
    RANKING_LEVELS,
    PairVerdict,
    PairwiseResult,
    belief_from_logprobs,
    expected_margin,
    margin_spread,
)
from serve_app.protocols.genrm_api import BestOfNRequest

# ---- the math -------------------------------------------------------------------------------------------------

distributions = (
    st.lists(st.floats(0.0, 1.0), min_size=6, max_size=6)
    .filter(lambda w: sum(w) > 1e-3)
    .map(lambda w: tuple(x / sum(w) for x in w))
)


@given(st.sampled_from(RANKING_LEVELS))
def test_a_point_mass_gives_exactly_the_sampled_margin(r: int) -> None:
    probs = tuple(1.0 if level == r else 0.0 for level in RANKING_LEVELS)
    verdict = PairVerdict(ranking=r, ranking_probs=probs)
    assert verdict.soft_margin == verdict.margin == 3.5 - r
    assert verdict.margin_sd == 0.0


@given(distributions)
def test_a_belief_symmetric_about_the_midpoint_has_no_preference(probs: tuple[float, ...]) -> None:
    symmetric = tuple((p + q) / 2 for p, q in zip(probs, reversed(probs), strict=True))
    assert expected_margin(symmetric) == pytest.approx(0.0, abs=1e-12)


@given(distributions)
def test_mirroring_the_belief_negates_the_margin_and_keeps_the_spread(probs: tuple[float, ...]) -> None:
    mirrored = tuple(reversed(probs))
    assert expected_margin(mirrored) == pytest.approx(-expected_margin(probs), abs=1e-12)
    assert margin_spread(mirrored) == pytest.approx(margin_spread(probs), abs=1e-12)
    assert -2.5 <= expected_margin(probs) <= 2.5
    assert 0.0 <= margin_spread(probs) <= 2.5 + 1e-12


@given(distributions)
def test_the_spread_is_the_standard_deviation_of_the_margin(probs: tuple[float, ...]) -> None:
    margins = np.array([3.5 - r for r in RANKING_LEVELS])
    p = np.array(probs)
    assert expected_margin(probs) == pytest.approx(float(p @ margins), abs=1e-12)
    assert margin_spread(probs) == pytest.approx(float(np.sqrt(p @ (margins - p @ margins) ** 2)), abs=1e-9)


def test_logprobs_are_renormalised_over_the_six_rankings() -> None:
    probs = belief_from_logprobs({2: math.log(0.3), 3: math.log(0.1), 5: -math.inf, 7: 0.0})
    assert probs == pytest.approx((0.0, 0.75, 0.25, 0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="no finite logprob"):
        belief_from_logprobs({9: -0.1})


@pytest.mark.parametrize(
    ("probs", "message"),
    [
        ((0.5, 0.5), "needs 6 probabilities, got 2"),
        ((1.2, -0.2, 0, 0, 0, 0), "non-negative"),
        ((0.5, 0.2, 0, 0, 0, 0), "must sum to 1"),
        ((float("nan"), 1, 0, 0, 0, 0), "finite"),
    ],
)
def test_an_invalid_belief_is_refused_with_a_reason(probs: tuple[float, ...], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PairVerdict(ranking=2, ranking_probs=probs)


def test_a_belief_needs_its_sampled_ranking() -> None:
    with pytest.raises(ValidationError, match="needs the sampled ranking"):
        PairVerdict(score_1=3, score_2=4, ranking_probs=(1, 0, 0, 0, 0, 0))


def test_rounding_in_the_belief_is_removed() -> None:
    verdict = PairVerdict(ranking=1, ranking_probs=(1.0 + 5e-7, 0, 0, 0, 0, 0))
    assert verdict.ranking_probs == (1.0, 0, 0, 0, 0, 0)
    assert verdict.soft_margin == 2.5


# ---- debiasing ------------------------------------------------------------------------------------------------

verdicts_without_belief = st.builds(
    PairVerdict, score_1=st.integers(1, 5), score_2=st.integers(1, 5), ranking=st.integers(1, 6)
)


@given(verdicts_without_belief, verdicts_without_belief)
def test_soft_falls_back_to_sampled_without_a_belief(forward: PairVerdict, backward: PairVerdict) -> None:
    assert combine_orders(0, 1, forward, backward, verdicts="soft") == combine_orders(0, 1, forward, backward)


@given(distributions, distributions, st.floats(-1.0, 1.0))
def test_soft_debiasing_averages_the_two_expected_margins(
    fwd: tuple[float, ...], bwd: tuple[float, ...], _: float
) -> None:
    forward = PairVerdict(ranking=1 + int(np.argmax(fwd)), ranking_probs=fwd)
    backward = PairVerdict(ranking=1 + int(np.argmax(bwd)), ranking_probs=bwd)
    soft = combine_orders(0, 1, forward, backward, verdicts="soft")
    sampled = combine_orders(0, 1, forward, backward, verdicts="sampled")
    assert soft.margin == pytest.approx((expected_margin(fwd) - expected_margin(bwd)) / 2)
    assert sampled.margin == ((3.5 - forward.ranking) - (3.5 - backward.ranking)) / 2
    # the verdicts stay as the judge gave them: the sampled rankings are still in the comparison
    assert soft.forward == forward and soft.backward == backward


def test_soft_consistency_asks_whether_both_beliefs_lean_the_same_way() -> None:
    # Sampled: ranking 4 then ranking 4 again (each order prefers the second-shown): a position flip.
    # Beliefs: the first call leans to the first-shown response, the second call to its second-shown one (= i).
    forward = PairVerdict(ranking=4, ranking_probs=(0.1, 0.4, 0.1, 0.3, 0.1, 0.0))
    backward = PairVerdict(ranking=4, ranking_probs=(0.0, 0.0, 0.2, 0.5, 0.2, 0.1))
    assert combine_orders(0, 1, forward, backward, verdicts="sampled").consistent is False
    soft = combine_orders(0, 1, forward, backward, verdicts="soft")
    assert soft.consistent is True and soft.margin is not None and soft.margin > 0


# ---- reading the belief from the engine's logprobs ------------------------------------------------------------


def position(token: str, logprob: float, top: dict[str, float] | None = None) -> dict[str, Any]:
    """One entry of ``choices[0].logprobs.content`` in vLLM's shape (ChatCompletionLogProbsContent dumped)."""

    def raw(text: str) -> list[int]:
        return list(text.encode("utf-8", errors="replace"))

    entries = [{"token": t, "logprob": lp, "bytes": raw(t)} for t, lp in (top or {}).items()]
    return {"token": token, "logprob": logprob, "bytes": raw(token), "top_logprobs": entries}


def content(pieces: list[str], at: int, top: dict[str, float]) -> list[dict[str, Any]]:
    """Generated tokens ``pieces`` with the top logprobs ``top`` at index ``at`` (and a few elsewhere)."""
    return [
        position(p, top.get(p, -0.01) if k == at else -0.01, top if k == at else {p: -0.01})
        for k, p in enumerate(pieces)
    ]


def test_the_test_shape_is_vllms_own() -> None:
    protocol = pytest.importorskip("vllm.entrypoints.openai.chat_completion.protocol")
    built = protocol.ChatCompletionLogProbsContent(
        token="2",
        logprob=-0.5,
        bytes=[50],
        top_logprobs=[protocol.ChatCompletionLogProb(token=" 3", logprob=-1.0, bytes=[32, 51])],
    )
    assert protocol.ChatCompletionLogProbs(content=[built]).model_dump()["content"] == [
        position("2", -0.5, {" 3": -1.0})
    ]


COMPACT = ['{"', "score", "_", "1", '":', " ", "4", ",", ' "', "score", "_", "2", '":', " ", "2", ",", ' "', "ranking"]
COMPACT += ['":', " ", "2", "}"]
RANKING_AT = 20


def test_compact_answer_belief_is_read_at_the_ranking_digit_not_at_an_equal_score() -> None:
    top = {"2": math.log(0.6), "3": math.log(0.2), "1": math.log(0.1), "7": math.log(0.05), ",": math.log(0.05)}
    lp = content(COMPACT, RANKING_AT, top)
    text = "".join(COMPACT)
    result = with_beliefs(parse_pairwise(text), lp)
    assert result.verdict is not None and result.verdict.ranking == 2
    # "7" is outside 1..6 and "," is no digit: renormalised over 1, 2, 3
    assert result.verdict.ranking_probs == pytest.approx((1 / 9, 6 / 9, 2 / 9, 0, 0, 0))
    assert result.verdict.soft_margin == pytest.approx((2.5 * 1 + 1.5 * 6 + 0.5 * 2) / 9)


def test_token_variants_of_one_digit_are_summed_and_the_sampled_token_counts_once() -> None:
    top = {"2": math.log(0.5), " 2": math.log(0.1), '"4': math.log(0.4)}
    belief = ranking_belief(content(COMPACT, RANKING_AT, top), 2)
    assert belief == pytest.approx((0, 0.6, 0, 0.4, 0, 0))
    # the sampled token is not listed among the top logprobs (other servers): its own logprob counts
    lp = content(COMPACT, RANKING_AT, {"3": math.log(0.25)})
    lp[RANKING_AT]["logprob"] = math.log(0.75)
    assert ranking_belief(lp, 2) == pytest.approx((0, 0.75, 0.25, 0, 0, 0))


def test_native_answer_after_the_reasoning_with_a_quoted_digit() -> None:
    reasoning = ["Let", " me", " think", ".", ' {"', "ranking", '":', " ", "5", "}", " draft", "</think>"]
    answer = ["\n\n", "```", "json", "\n", '{"', "score", "_", "1", '":', " ", "3", ",", ' "', "score", "_", "2"]
    answer += ['":', " ", "4", ",", ' "', "ranking", '":', ' "', "4", '"', "}", "\n", "```"]
    pieces = reasoning + answer
    at = len(reasoning) + answer.index("4", 19)
    top = {"4": math.log(0.5), "5": math.log(0.3), "3": math.log(0.2)}
    lp = content(pieces, at, top)
    # with a reasoning parser the completion text is only the answer; the logprobs cover every token
    result = with_beliefs(parse_pairwise("".join(answer)), lp)
    assert result.verdict is not None and result.verdict.ranking == 4
    assert result.verdict.ranking_probs == pytest.approx((0, 0, 0.2, 0.5, 0.3, 0))
    # the draft's "ranking": 5 inside the reasoning is never read: its logprobs do not reach the verdict
    assert ranking_belief(content(pieces, pieces.index("5"), top), 4) == (0, 0, 0, 1, 0, 0)


def test_only_the_digits_position_needs_readable_logprobs() -> None:
    """Positions elsewhere are read for their token text only: a broken alternative there does not hide the belief."""
    lp = content(COMPACT, RANKING_AT, {"2": math.log(0.75), "3": math.log(0.25)})
    lp[2]["top_logprobs"] = [{"token": "_", "logprob": "not a number"}]
    lp[5]["logprob"] = None
    assert ranking_belief(lp, 2) == pytest.approx((0, 0.75, 0.25, 0, 0, 0))


def test_a_digit_with_a_leading_space_in_its_token() -> None:
    pieces = ['{"', "ranking", '":', " 6", "}"]
    belief = ranking_belief(content(pieces, 3, {" 6": math.log(0.9), " 5": math.log(0.1)}), 6)
    assert belief == pytest.approx((0, 0, 0, 0, 0.1, 0.9))


@pytest.mark.parametrize(
    "case",
    [
        "no logprobs",
        "empty top",
        "token ids",
        "other digit",
        "merged digits",
        "malformed",
        "malformed digit",
        "no verdict",
        "boxed",
    ],
)
def test_missing_or_unreadable_logprobs_leave_the_sampled_verdict(case: str) -> None:
    text = "".join(COMPACT)
    lp: Any = content(COMPACT, RANKING_AT, {"2": -0.1, "3": -2.5})
    ranking = 2
    if case == "no logprobs":
        lp = None
    elif case == "empty top":
        lp[RANKING_AT]["top_logprobs"] = []
    elif case == "token ids":
        lp = [{**e, "token": f"token_id:{k}"} for k, e in enumerate(lp)]
    elif case == "other digit":  # the answer text says 3, the tokens say 2
        ranking = 3
        text = text.replace('"ranking": 2', '"ranking": 3')
    elif case == "merged digits":  # the digit shares its token with the closing brace
        lp = content([*COMPACT[:RANKING_AT], "2}"], RANKING_AT, {"2}": -0.1, "3}": -2.5})
    elif case == "malformed":
        lp = [{"token": 3}]
    elif case == "malformed digit":  # only the digit's position is validated in full: there, a bad logprob counts
        lp[RANKING_AT]["logprob"] = "high"
    elif case == "no verdict":
        lp = content(["no", " json", " here"], 0, {"no": -0.1})
    elif case == "boxed":  # the older GenRM's format has no JSON key to find the digit by
        pieces = ["[The Begin of Ranking Score]\n\\boxed{", "2", "}\n[The End of Ranking Score]"]
        text = "".join(pieces)
        lp = content(pieces, 1, {"2": -0.1, "3": -2.5})
    assert ranking_belief(lp, ranking) is None
    result = with_beliefs(parse_pairwise(text), lp)
    assert result.ok and result.verdict is not None and result.verdict.ranking_probs is None
    assert result.verdict.ranking == ranking


class RecordingClient:
    model = "stand-in"

    def __init__(self, completion: Completion) -> None:
        self.completion = completion
        self.requests: list[dict[str, Any]] = []

    async def chat(self, request: dict[str, Any]) -> Completion:
        self.requests.append(request)
        return self.completion


def test_the_judge_asks_for_top_logprobs_and_attaches_the_belief() -> None:
    top = {"2": math.log(0.7), "1": math.log(0.3)}
    completion = Completion(text="".join(COMPACT), finish_reason="stop", logprobs=content(COMPACT, RANKING_AT, top))
    client = RecordingClient(completion)
    settings = PairwiseSettings(prompt_format="rendered", structured_output="compact")
    judge = PairwiseJudge(client, settings)
    conversation = [{"role": "user", "content": "Which is right?"}]
    result = asyncio.run(judge.compare(conversation, "Paris.", "Lyon."))
    assert client.requests[0]["logprobs"] is True and client.requests[0]["top_logprobs"] == 10
    assert "structured_outputs" in client.requests[0]
    assert result.verdict is not None and result.verdict.ranking == 2
    assert result.verdict.ranking_probs == pytest.approx((0.3, 0.7, 0, 0, 0, 0))

    off = RecordingClient(completion.model_copy(update={"logprobs": None}))
    quiet = PairwiseJudge(off, settings.model_copy(update={"ranking_logprobs": 0}))
    result = asyncio.run(quiet.compare(conversation, "Paris.", "Lyon."))
    assert "logprobs" not in off.requests[0] and "top_logprobs" not in off.requests[0]
    assert result.verdict is not None and result.verdict.ranking_probs is None


def test_a_judge_that_knows_its_digit_tokens_asks_for_exactly_those() -> None:
    from tiny_tokenizer import chatml_tokenizer
    from transformers import PreTrainedTokenizerFast

    from deployments.pairwise.judge import digit_token_ids

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=chatml_tokenizer())
    ids = digit_token_ids(tokenizer)
    decoded = [tokenizer.decode([i]) for i in ids]
    assert {d.strip(' "') for d in decoded} == set("123456")  # every digit, and variants (" 2") where one token
    top = {"2": math.log(0.6), "1": math.log(0.3), "6": math.log(0.1)}
    completion = Completion(text="".join(COMPACT), finish_reason="stop", logprobs=content(COMPACT, RANKING_AT, top))
    client = RecordingClient(completion)
    settings = PairwiseSettings(prompt_format="rendered", structured_output="compact")
    judge = PairwiseJudge(client, settings, digit_token_ids=ids)
    result = asyncio.run(judge.compare([{"role": "user", "content": "Which is right?"}], "Paris.", "Lyon."))
    assert client.requests[0]["logprob_token_ids"] == ids and "top_logprobs" not in client.requests[0]
    assert result.verdict is not None and result.verdict.ranking_probs == pytest.approx((0.3, 0.6, 0, 0, 0, 0.1))


def test_ranking_logprobs_is_bounded_by_what_vllm_serves() -> None:
    with pytest.raises(ValidationError, match="less than or equal to 20"):
        PairwiseSettings(ranking_logprobs=50)


# ---- the selection setting ------------------------------------------------------------------------------------


class BeliefJudge:
    """Samples a ranking that contradicts its belief whenever the first-shown candidate has the odd index."""

    def __init__(self, quality: list[float]) -> None:
        self.quality = quality

    async def pairwise(self, first: int, second: int) -> PairwiseResult:
        better_first = self.quality[first] > self.quality[second]
        probs = (0.0, 0.7, 0.3, 0.0, 0.0, 0.0) if better_first else (0.0, 0.0, 0.0, 0.3, 0.7, 0.0)
        ranking = 3 if better_first else 4
        if first % 2:  # an unlucky draw from the belief's far side
            ranking = 7 - ranking
        return PairwiseResult(verdict=PairVerdict(score_1=3, score_2=3, ranking=ranking, ranking_probs=probs))


@pytest.mark.parametrize("strategy", ["round_robin", "swiss", "knockout"])
def test_soft_verdicts_follow_the_belief_when_draws_contradict_it(strategy: str) -> None:
    quality = [0.0, 5.0, 1.0, 4.0, 2.0, 3.0]
    judge = BeliefJudge(quality)

    def best(mode: str) -> int:
        config = SelectionConfig(strategy=strategy, use_principle=False, verdicts=mode)  # type: ignore[arg-type]
        return asyncio.run(select_best(len(quality), judge.pairwise, None, config)).best

    assert best("soft") == 1
    assert SelectionConfig().verdicts == "soft"


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 1000))
def test_without_beliefs_soft_and_sampled_select_alike(seed: int) -> None:
    from bench.simulated_judges import VARIANTS, SimulatedJudges

    quality = np.random.default_rng(seed).normal(size=6)

    def run(mode: str):
        judges = SimulatedJudges(quality, VARIANTS["base"], np.random.default_rng(seed))
        config = SelectionConfig(strategy="swiss", use_principle=False, seed=seed, verdicts=mode)  # type: ignore[arg-type]
        result = asyncio.run(select_best(6, judges.pairwise, None, config))
        return result.model_dump(exclude={"elapsed_s"})

    assert run("soft") == run("sampled")


def test_the_verdicts_setting_says_what_is_allowed() -> None:
    with pytest.raises(ValidationError, match="'soft' or 'sampled'"):
        SelectionConfig(verdicts="expected")  # type: ignore[arg-type]
    body = {"conversation": [{"role": "user", "content": "q"}], "candidates": ["a", "b"]}
    with pytest.raises(ValidationError, match="'soft' or 'sampled'"):
        BestOfNRequest.model_validate({**body, "verdicts": "mean"})
    assert BestOfNRequest.model_validate({**body, "verdicts": "sampled"}).verdicts == "sampled"


def test_the_helpfulness_beliefs_are_read_at_their_own_digits() -> None:
    """The compact answer {"score_1": 4, "score_2": 2, "ranking": 2}: each score's belief is read at its digit over
    1..5 (a "6" there is no helpfulness level), the ranking's at its own; the expected scores follow."""
    lp = content(COMPACT, RANKING_AT, {"2": math.log(0.5), "3": math.log(0.5)})
    lp[6] = position("4", math.log(0.7), {"4": math.log(0.7), "5": math.log(0.2), "6": math.log(0.1)})
    lp[14] = position("2", math.log(0.6), {"2": math.log(0.6), " 1": math.log(0.4)})
    assert score_belief(lp, "score_1", 4) == pytest.approx((0, 0, 0, 7 / 9, 2 / 9))
    result = with_beliefs(parse_pairwise("".join(COMPACT)), lp)
    verdict = result.verdict
    assert verdict is not None and verdict.ranking_probs == pytest.approx((0, 0.5, 0.5, 0, 0, 0))
    assert verdict.score_2_probs == pytest.approx((0.4, 0.6, 0, 0, 0))
    assert verdict.expected_scores == pytest.approx((4 + 2 / 9, 1.6))
    # a score whose digit carries no other candidates is a point mass; a verdict without beliefs keeps its scores
    assert score_belief(content(COMPACT, 0, {}), "score_2", 2) == (0, 1, 0, 0, 0)
    assert PairVerdict(score_1=3, score_2=5, ranking=5).expected_scores == (3, 5)


def test_a_score_belief_needs_its_score() -> None:
    with pytest.raises(ValueError, match="sampled score"):
        PairVerdict(ranking=2, score_1_probs=(0, 0, 1, 0, 0))
