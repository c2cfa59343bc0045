"""Offline: do an evaluation file's items fit the judges' context, as a Serve config would run them?

Every judge call an item makes is measured as the router measures it (:class:`deployments.context.ContextBudget`:
the judge's own chat template, its ``max_tokens``, the conversation and the principle), with the judge's own
tokenizer. Under the config's overlong policy an item either fits, is truncated, or would be refused (422) — the
last is what this check exists to find before a run of hours does.

    python -m serve_app check-fit config.yaml --judgebench FILE --rmbench FILE ...
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from deployments.chat import ChatMessage
from deployments.context import ContextBudget
from serve_app.config import JUDGE_ROLES, AppConfig
from serve_app.core.fitting import MIN_RESPONSE_TOKENS
from serve_app.evaluation.records import JudgeBenchRecord, RMBenchRecord


@dataclass
class _Calls:
    """The judge calls of one item: a conversation and, per judge, the response groups one call shows."""

    conversation: list[ChatMessage]
    principle: list[tuple[str, ...]] = field(default_factory=list)
    pairwise: list[tuple[str, ...]] = field(default_factory=list)


def item_calls(benchmark: str, record: Any) -> _Calls:
    """What the evaluation sends for one record (:mod:`serve_app.evaluation.runner`)."""
    if benchmark == "judgebench":
        assert isinstance(record, JudgeBenchRecord)
        a, b = record.response_A, record.response_B
        return _Calls([ChatMessage(role="user", content=record.question)], [(a,), (b,)], [(a, b)])
    if benchmark == "rmbench":
        assert isinstance(record, RMBenchRecord)
        return _Calls(
            [ChatMessage(role="user", content=record.prompt)],
            [(t,) for t in (*record.chosen, *record.rejected)],
            [(c, r) for c in record.chosen for r in record.rejected],
        )
    raise ValueError(f"check-fit covers judgebench and rmbench, not {benchmark!r}")


class JudgeFit(BaseModel):
    judge: str
    context_tokens: int
    calls: int = 0
    items_over: int = 0
    responses_over: int = 0
    no_room: int = 0  # items whose conversation alone leaves no room for a response
    longest_response_tokens: int = 0
    least_room_tokens: int | None = None


class FitReport(BaseModel):
    benchmark: str
    items: int
    policy: str
    judges: list[JudgeFit]
    refused: int  # items the service would answer with 422 under the policy

    def lines(self) -> list[str]:
        out = [f"{self.benchmark}: {self.items} items, overlong policy {self.policy!r}"]
        for j in self.judges:
            verb = "truncated" if self.policy == "truncate" else "REFUSED"
            out.append(
                f"  {j.judge}: context {j.context_tokens}, {j.calls} calls; longest response "
                f"{j.longest_response_tokens} tokens, least room {j.least_room_tokens}; {j.items_over} items over "
                f"({j.responses_over} responses {verb}); {j.no_room} items with no room at all"
            )
        out.append(f"  => {self.refused} items would be refused (422)")
        return out


def check_fit(
    benchmark: str,
    records: Sequence[Any],
    budgets: dict[str, ContextBudget],
    principles: Iterable[str] = ("correctness",),
    policy: str = "reject",
) -> FitReport:
    principle_list = list(principles)
    fits = {role: JudgeFit(judge=role, context_tokens=b.context_tokens) for role, b in budgets.items()}
    refused = 0
    for record in records:
        calls = item_calls(benchmark, record)
        refuse = False
        for role, budget in budgets.items():
            fit = fits[role]
            groups = calls.principle if role == "principle" else calls.pairwise
            principle_tokens = max((budget.count(p) for p in principle_list), default=0) if role == "principle" else 0
            room = budget.room(budget.conversation_tokens(calls.conversation), principle_tokens)
            fit.calls += len(groups)
            fit.least_room_tokens = room if fit.least_room_tokens is None else min(fit.least_room_tokens, room)
            if room < MIN_RESPONSE_TOKENS:
                fit.no_room += 1
                refuse = True
                continue
            lengths = {text: budget.count(text) for group in groups for text in group}
            over = [n for n in lengths.values() if n > room]
            fit.longest_response_tokens = max(fit.longest_response_tokens, *lengths.values())
            fit.responses_over += len(over)
            fit.items_over += bool(over)
            refuse = refuse or (bool(over) and policy == "reject")
        refused += refuse
    return FitReport(
        benchmark=benchmark, items=len(records), policy=policy, judges=list(fits.values()), refused=refused
    )


class _NoCalls:
    """The client of an offline judge: budgets only build prompts, so a call would be a bug."""

    model = "offline"

    async def chat(self, request: dict[str, Any]) -> Any:
        raise RuntimeError("check-fit never calls a judge")


def budgets_from_serve_config(path: str) -> tuple[AppConfig, dict[str, ContextBudget]]:
    """The judges' budgets for the first application of a Serve config file, built by the router's own
    :func:`~serve_app.core.judge_pool.build_judges` (same tokenizers, special tokens and template markers).
    Packaged models are converted into the local cache once, as `serve run` would; no engine is started."""
    import yaml

    from serve_app.core.judge_pool import build_judges, judge_llm_configs, tokenizer_source

    with open(path) as f:
        document = yaml.safe_load(f)
    config = AppConfig.model_validate(document["applications"][0].get("args") or {})
    llm_fields = judge_llm_configs(config)
    roles = [role for role in JUDGE_ROLES if getattr(config, role) is not None]
    tokenizers = {role: tokenizer_source(getattr(config, role), llm_fields.get(role)) for role in roles}
    judges = build_judges(config, tokenizers, clients={role: _NoCalls() for role in roles})
    return config, judges.budgets
