"""Overlong text: the room a judge call leaves for each response, and the reject / truncate policy, measured with
the CPU default's real tokenizer and the judges' own prompts."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from deployments.chat import ChatMessage
from deployments.context import ContextBudget, chat_tokens
from deployments.pairwise.judge import PairwiseJudge, PairwiseSettings
from deployments.principle.judge import PrincipleJudge, PrincipleSettings
from deployments.principle.parse import VerdictTokens
from serve_app.core.fitting import fit_texts as _fit_texts
from serve_app.core.refusal import Refusal

transformers = pytest.importorskip("transformers")

from live_service import ROOT, cpu_args  # noqa: E402

CONTEXT = 2048
CONVERSATION = [ChatMessage(role="user", content="What is the capital of France?")]


class _NoCalls:
    model = "unused"

    async def chat(self, request: dict[str, Any]) -> Any:
        raise AssertionError("budgets never call the model")


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from serve_app.model_cache import ensure_local_model

    source = cpu_args()["principle"]["hosted"]["llm_config"]["model_loading_config"]["model_source"]
    return transformers.AutoTokenizer.from_pretrained(ensure_local_model(source))


@pytest.fixture(scope="module")
def budgets(tokenizer: Any) -> dict[str, ContextBudget]:
    args = yaml.safe_load((ROOT / "config.yaml").read_text())["applications"][0]["args"]
    principle = PrincipleJudge(
        _NoCalls(),
        PrincipleSettings.model_validate(args["principle"]["settings"]),
        VerdictTokens.from_tokenizer(tokenizer),
        special_tokens=tokenizer.all_special_tokens,
    )
    pairwise = PairwiseJudge(
        _NoCalls(),
        PairwiseSettings.model_validate(args["pairwise"]["settings"]),
        special_tokens=tokenizer.all_special_tokens,
    )
    return {
        "principle": ContextBudget(principle, tokenizer, CONTEXT),
        "pairwise": ContextBudget(pairwise, tokenizer, CONTEXT),
    }


def test_room_accounts_for_the_real_prompt(budgets: dict[str, ContextBudget], tokenizer: Any) -> None:
    pairwise = budgets["pairwise"]
    conversation_tokens = pairwise.conversation_tokens(CONVERSATION)
    room = pairwise.room(conversation_tokens, 0)
    # A pair of responses that just fit the room, rendered by the real template, stays inside the context.
    response = pairwise.truncate("Paris is the capital. " * 2000, room)
    judge_messages = PairwiseJudge(
        _NoCalls(),
        PairwiseSettings.model_validate(cpu_args()["pairwise"]["settings"]),
        special_tokens=tokenizer.all_special_tokens,
    ).messages(CONVERSATION, [response, response], None)
    assert chat_tokens(tokenizer, judge_messages) + pairwise.answer_tokens <= CONTEXT
    assert room > 400  # and the margin is not wasteful: ~ (2048 - prompt - answer) / 2
    assert budgets["principle"].room(conversation_tokens, 3) > room  # one response per call


def test_short_texts_pass_unchanged(budgets: dict[str, ContextBudget]) -> None:
    texts = ["Paris.", "Lyon."]
    assert _fit_texts(budgets, CONVERSATION, texts, ["correctness"], "reject", "candidate") == (texts, [])


def test_reject_names_the_text_its_length_and_the_room(budgets: dict[str, ContextBudget]) -> None:
    long = "word " * 3000
    with pytest.raises(Refusal) as caught:
        _fit_texts(budgets, CONVERSATION, ["Paris.", long], ["correctness"], "reject", "candidate")
    assert caught.value.status == 422
    pairwise = budgets["pairwise"]  # two responses per call: the tighter judge, so the one named
    room = pairwise.room(pairwise.conversation_tokens(CONVERSATION), pairwise.count("correctness"))
    expected = f"candidate 1 is {pairwise.count(long)} tokens; the pairwise judge's context leaves room for {room} "
    assert caught.value.message.startswith(expected) and "'truncate'" in caught.value.message


def test_truncate_cuts_to_the_tightest_judge_and_reports_it(budgets: dict[str, ContextBudget]) -> None:
    long = "The capital of France is Paris. " * 1000
    texts, cut = _fit_texts(
        budgets, CONVERSATION, ["Paris.", long, long[:50]], ["correctness"], "truncate", "candidate"
    )
    assert cut == [1]
    assert texts[0] == "Paris." and texts[2] == long[:50]
    assert long.startswith(texts[1].rstrip()) and len(texts[1]) < len(long)
    conversation_tokens = budgets["pairwise"].conversation_tokens(CONVERSATION)
    pairwise = budgets["pairwise"]
    assert pairwise.count(texts[1]) <= pairwise.room(conversation_tokens, pairwise.count("correctness"))


def test_a_conversation_that_fills_the_context_is_refused_under_either_policy(
    budgets: dict[str, ContextBudget],
) -> None:
    conversation = [ChatMessage(role="user", content="word " * 2000)]
    for policy in ("reject", "truncate"):
        with pytest.raises(Refusal, match="no room") as caught:
            _fit_texts(budgets, conversation, ["Paris."], [], policy, "candidate")
        assert caught.value.status == 422
