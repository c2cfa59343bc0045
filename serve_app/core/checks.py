"""What the core checks before any judge is called, in one place: sizes and counts against the router's limits, and
whether the judges a design needs are configured. Each check raises a :class:`~serve_app.core.refusal.Refusal` that
says what was wrong and what is allowed; the context-window check is :mod:`serve_app.core.fitting` (it needs the
judges' tokenizers)."""

from __future__ import annotations

from collections.abc import Sequence

from deployments.chat import ChatMessage
from policies.selection import SelectionConfig
from serve_app.config import RouterConfig
from serve_app.core.refusal import reject
from serve_app.protocols.genrm_api import BestOfNRequest, SelectionOptions


class RequestChecks:
    """The router section's limits, applied to the parts of a request."""

    def __init__(self, limits: RouterConfig) -> None:
        self.limits = limits

    def texts(self, texts: Sequence[str], what: str) -> None:
        limit = self.limits.max_text_chars
        for i, text in enumerate(texts):
            if len(text) > limit:
                raise reject(422, f"{what} {i} has {len(text)} characters; at most {limit} are allowed")

    def principles(self, given: list[str] | None) -> list[str]:
        """The principles a request is judged by (``router.default_principles`` when it names none)."""
        principles = given if given is not None else self.limits.default_principles
        if len(principles) > self.limits.max_principles:
            raise reject(
                422, f"{len(principles)} principles; at most {self.limits.max_principles} are allowed per request"
            )
        return principles

    def prompt_texts(
        self, conversation: Sequence[ChatMessage], principles: Sequence[str], principle_for_pairwise: str | None
    ) -> None:
        self.texts([m.content for m in conversation], "conversation turn")
        self.texts([*principles, *filter(None, [principle_for_pairwise])], "principle")

    def group(self, body: BestOfNRequest) -> list[str]:
        """A best-of-N or rank group; returns its principles."""
        n, cap = len(body.candidates), self.limits.max_candidates
        if n > cap:
            raise reject(422, f"{n} candidates; this service takes 1 to {cap}")
        principles = self.principles(body.principles)
        self.texts(body.candidates, "candidate")
        self.prompt_texts(body.conversation, principles, body.principle_for_pairwise)
        return principles

    def group_size(self, size: int | None) -> None:
        if size is not None and size > self.limits.max_candidates:
            raise reject(
                422, f"group_size {size}; this service judges groups of 1 to {self.limits.max_candidates} rollouts"
            )

    def batch(self, groups: int) -> None:
        if groups > self.limits.max_batch_groups:
            raise reject(
                422,
                f"{groups} groups; at most {self.limits.max_batch_groups} are allowed per request "
                "(router.max_batch_groups)",
            )

    def selection(self, options: SelectionOptions) -> SelectionConfig:
        """The configured selection with the request's overrides."""
        base = self.limits.selection
        overrides = {
            k: v for k, v in options.model_dump(include=set(SelectionOptions.model_fields)).items() if v is not None
        }
        try:
            return SelectionConfig.model_validate({**base.model_dump(), **overrides})
        except ValueError as exc:
            raise reject(422, f"invalid selection options: {exc}") from exc

    @staticmethod
    def judges_for(config: SelectionConfig, has_principle: bool, has_pairwise: bool) -> None:
        """The design's judges are configured."""
        if config.strategy != "principle" and not has_pairwise and not (config.use_principle and has_principle):
            raise reject(422, f"strategy {config.strategy!r} needs the pairwise judge, which is not configured")
        if config.strategy == "principle" and not has_principle:
            raise reject(422, "strategy 'principle' needs the principle judge, which is not configured")

    @staticmethod
    def judge_present(role: str, present: bool) -> None:
        if not present:
            raise reject(404, f"the {role} judge is not configured in this deployment")
