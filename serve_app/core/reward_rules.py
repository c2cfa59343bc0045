"""Reward rules: how a group's judging becomes one reward per response, and which design judges it.

The core's per-sample path (:meth:`serve_app.core.service.JudgingService.reward`) judges each cohort by one rule,
named by the caller; cohorts of different rules never mix (the rule is part of the cohort key).

* ``ensemble`` (the default): the cohort design ``router.cohorts.strategy``, and each response's ensemble score;
* ``anchored`` (a request with a ``reference``): each rollout judged against the reference answer in both orders;
  its reward is its mean margin over the reference, in [-2.5, 2.5], comparable between groups and steps;
* ``nemo_gym``: NVIDIA's RLHF rule as NeMo-Gym's ``genrm_compare`` computes it — circular pairs, one order each,
  the pairwise judge alone, then the mean helpfulness with the ranking tie-break (:mod:`policies.nemo_gym`), and
  NeMo-Gym's length and style terms when ``router.trainers.nemo_gym`` sets any. Those read each response's texts
  (:class:`~policies.nemo_gym.RolloutTexts`): ``/compare`` hands them over with the group, and on the per-sample
  path each sample brings its own (``Sample.rollout``), which the cohort hands back in judged order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from policies.nemo_gym import JudgedPair, NemoGymAggregate, RolloutTexts, aggregate, pairs_from_comparisons, shape
from serve_app.config import NemoGymSettings, RouterConfig
from serve_app.core.answers import Selected

#: each rollout against the request's reference answer, both orders, the pairwise judge alone (policies.pairings)
ANCHORED_DESIGN: Mapping[str, Any] = {"strategy": "anchored", "swap": True, "use_principle": False}
#: NVIDIA's design for the NeMo-Gym rule: circular pairs, one order each, the pairwise judge alone
NEMO_GYM_DESIGN: Mapping[str, Any] = {"strategy": "circular", "swap": False, "use_principle": False}


@dataclasses.dataclass(frozen=True)
class RewardRule:
    """A cohort's design (fields of a rank request) and its reading: ``rewards(selected, n, rollouts)`` per judged
    response (``rollouts``: each judged sample's texts, in judged order), or None for the ensemble score of each."""

    name: str
    design: Mapping[str, Any]
    rewards: Callable[[Selected, int, Sequence[RolloutTexts | None]], list[float]] | None = None
    #: the cohort is judged against the request's reference answer, judged as candidate 0 (``anchored``)
    anchored: bool = False
    #: ``rewards`` reads every sample's texts: a sample must bring them (``JudgingService.reward``'s ``rollout``)
    reads_rollouts: bool = False


def nemo_gym_rewards(
    selected: Selected, n: int, settings: NemoGymSettings, rollouts: list[RolloutTexts] | None = None
) -> tuple[NemoGymAggregate, list[JudgedPair]]:
    """NeMo-Gym's aggregate of a group judged by :data:`NEMO_GYM_DESIGN`, and the pairs as NeMo-Gym reports them.
    Identical responses are judged once: every copy gets its first occurrence's reward, then the length and style
    terms (when configured) read each copy's own texts.

    ``rollouts`` holds one entry per judged response, in judged order, so the group terms are relative to exactly
    the responses whose rewards come out. In a cohort that means: at its timeout, the rollouts that arrived and
    were judged (NeMo-Gym itself fails such a cohort); a rollout to be masked (too few usable verdicts) stays in, as
    in NeMo-Gym, where a call without a verdict counts with the defaults — its reward from those defaults sets the
    top scorers' bar and its lengths enter the weights — and only its own answered reward is then the cohort's mean
    valid reward (:func:`~serve_app.core.answers.group_rewards`)."""
    pairs = pairs_from_comparisons(
        selected.result.comparisons, default_score=settings.default_score, default_ranking=settings.default_ranking
    )
    result = aggregate(n, pairs, default_score=settings.default_score)
    for group in selected.duplicates:
        for k in group[1:]:
            result.rewards[k] = result.rewards[group[0]]
    if settings.shaping_active:
        if rollouts is None:
            raise ValueError("the length and style terms need each response's texts (rollouts)")
        result.rewards = shape(result.rewards, rollouts, settings)
    return result, pairs


def reward_rules(limits: RouterConfig) -> dict[str, RewardRule]:
    """Every rule by name, with this deployment's settings."""
    settings = limits.trainers.nemo_gym
    return {
        "ensemble": RewardRule(
            "ensemble", {"strategy": limits.cohorts.strategy, "strengths": limits.cohorts.strengths}
        ),
        "anchored": RewardRule("anchored", ANCHORED_DESIGN, anchored=True),
        "nemo_gym": RewardRule(
            "nemo_gym",
            NEMO_GYM_DESIGN,
            lambda selected, n, rollouts: (
                nemo_gym_rewards(selected, n, settings, _texts(rollouts, settings))[0].rewards
            ),
            reads_rollouts=settings.shaping_active,
        ),
    }


def _texts(rollouts: Sequence[RolloutTexts | None], settings: NemoGymSettings) -> list[RolloutTexts] | None:
    """The cohort's texts for :func:`nemo_gym_rewards`: None when no term reads them."""
    if not settings.shaping_active:
        return None
    texts = [r for r in rollouts if r is not None]
    if len(texts) != len(rollouts):  # JudgingService.reward refuses such a sample: a caller's bug
        raise ValueError("a sample of a cohort whose rule reads the rollouts' texts brought none")
    return texts
