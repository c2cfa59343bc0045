"""The core's answers, assembled in one place from what a selection produced (:class:`Selected`).

Best-of-N, rank and per-sample reward answers share their account of the judging (calls made and failed, degraded
reasons, timings, overlong text); :func:`judging_account` is that account, and each answer adds its own view.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from policies.health import JudgeHealth
from policies.pairings import anchored_margins
from policies.selection import SelectionConfig, SelectionResult
from policies.validity import neutral_fill
from serve_app.config import JUDGE_ROLES, AppConfig
from serve_app.protocols.genrm_api import (
    BestOfNResponse,
    CandidateScore,
    CohortTimings,
    JudgeProvenance,
    OverlongPolicy,
    Provenance,
    RankResponse,
    RewardResponse,
    Timings,
)


@dataclasses.dataclass
class Selected:
    """What one best-of-N/rank selection produced, in the request's own candidate indices."""

    result: SelectionResult
    config: SelectionConfig
    principles: list[str]
    timings: Timings
    duplicates: list[list[int]]
    truncated: list[int]
    #: the judges and configuration behind it (None where the caller built it without a service)
    judges: Provenance | None = None
    #: the judges' health in this group's judging (policies.health)
    health: JudgeHealth | None = None


def judges_provenance(config: AppConfig) -> Provenance:
    """The replica's judges as its configuration names them, and a hash of the whole configuration (the design is
    filled per selection by :func:`provenance`)."""
    judges = {}
    for role in JUDGE_ROLES:
        cfg = getattr(config, role)
        if cfg is None:
            continue
        hosted, endpoint = cfg.hosted, cfg.endpoint
        loading = hosted.llm_config.get("model_loading_config", {}) if hosted is not None else {}
        engine = hosted.llm_config.get("engine_kwargs", {}) if hosted is not None else {}
        judges[role] = JudgeProvenance(
            model=hosted.model_id if hosted is not None else endpoint.model if endpoint is not None else role,
            source=hosted.model_source if hosted is not None else endpoint.base_url if endpoint is not None else None,
            revision=engine.get("revision") or loading.get("revision"),
            sampling=cfg.settings.sampling.model_dump(mode="json", exclude_none=True),
        )
    digest = hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:16]
    return Provenance(judges=judges, design={}, config_hash=digest)


def provenance(
    judges: Provenance, config: SelectionConfig, principle_used: bool, versions: dict[str, str] | None = None
) -> Provenance:
    """``judges`` (the replica's judges and config hash) with the design this selection ran and the version stamp
    of each judge model that answered (hosted judges stamp their answers)."""
    design = {
        "strategy": config.strategy,
        "swap": config.swap,
        "use_principle": principle_used,
        "max_pairwise_calls": config.max_pairwise_calls,
        "verdicts": config.verdicts,
        "strengths": config.fitted_strengths,
        "seed": config.seed,
    }
    return judges.model_copy(update={"design": design, "judge_versions": versions or {}})


def judging_account(selected: Selected, overlong: OverlongPolicy) -> dict[str, Any]:
    """The fields every group answer carries about how it was judged."""
    result = selected.result
    return {
        "pairwise_calls": result.pairwise_calls,
        "principle_calls": result.principle_calls,
        "failed_calls": result.failed_calls,
        "style_effect": result.style_effect,
        "position_bias": result.position_bias,
        "judge_terms": result.judge_terms,
        "degraded": result.degraded,
        "deadline_reached": result.deadline_reached,
        "cancelled_calls": result.cancelled_calls,
        "design": result.design,
        "duplicates": selected.duplicates,
        "truncated": selected.truncated,
        "overlong_policy": overlong,
        "timings": selected.timings,
        "provenance": selected.judges,
        "diagnostics": selected.health,
    }


def group_rewards(selected: Selected, values: list[float] | None = None) -> list[float]:
    """Every judged response's reward, in judged order: ``values`` (a reward rule's), else the ensemble scores; an
    invalid response gets the mean of the valid ones, never its unsupported score."""
    rows = by_index(selected)
    return neutral_fill(values if values is not None else [c.score for c in rows], [c.valid for c in rows])


def anchored_rewards(selected: Selected) -> list[float]:
    """Per rollout of an anchored group (candidate 0 is the reference): its mean margin over the reference; an
    invalid rollout (or one with no verdict) gets the mean of the valid ones."""
    rows = by_index(selected)
    margins = anchored_margins(len(rows), selected.result.comparisons)
    valid = [r.valid and m is not None for r, m in zip(rows[1:], margins, strict=True)]
    return neutral_fill([m if m is not None else 0.0 for m in margins], valid)


def best_of_n_answer(selected: Selected, candidates: list[str], overlong: OverlongPolicy) -> BestOfNResponse:
    result = selected.result
    return BestOfNResponse(
        index=result.best,
        text=candidates[result.best],
        strategy=selected.config.strategy,
        ranking=result.ranking,
        candidates=result.candidates,
        comparisons=result.comparisons,
        principles=selected.principles if result.principle_calls else [],
        rounds=result.rounds,
        swap_inconsistency=result.swap_inconsistency,
        **judging_account(selected, overlong),
    )


def by_index(selected: Selected) -> list[CandidateScore]:
    return sorted(selected.result.candidates, key=lambda c: c.index)


def rank_answer(selected: Selected, overlong: OverlongPolicy) -> RankResponse:
    rows = by_index(selected)
    valid = [c.valid for c in rows]
    return RankResponse(
        scores=neutral_fill([c.score for c in rows], valid),
        ranks=[c.rank for c in rows],
        valid=valid,
        candidates=rows,
        **judging_account(selected, overlong),
    )


def reward_answer(
    selected: Selected,
    position: int,
    reward: float,
    overlong: OverlongPolicy,
    *,
    cohort: dict[str, Any],
    timings: CohortTimings,
) -> RewardResponse:
    """One rollout's row of its cohort's judging: ``position`` is its place among the judged responses, ``reward``
    the value its reward rule gives it (:func:`group_rewards`), ``cohort`` the cohort's own fields (ids, sizes, how it
    closed)."""
    row = next(c for c in selected.result.candidates if c.index == position)
    account = judging_account(selected, overlong)
    for per_group in ("style_effect", "duplicates", "timings"):
        del account[per_group]
    account["truncated"] = position in selected.truncated
    return RewardResponse(
        reward=reward,
        valid=row.valid,
        rank=row.rank,
        candidate=row.model_copy(update={"index": cohort["rollout_index"]}),
        strategy=selected.config.strategy,
        timings=timings,
        **cohort,
        **account,
    )
