"""Style control: features from text, the joint Bradley–Terry fit, identifiability and the selection setting."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from scipy.stats import spearmanr

from bench.simulated_judges import JudgeModel, SimulatedJudges
from bench.style_control import LengthBiasedJudges, StyleJudgedPair, group, style_effect_of_records
from policies import bradley_terry as bt
from policies.selection import SelectionConfig, select_best
from policies.style import COLLINEAR, CONSTANT, FEATURES, TOO_FEW, fittable_features, style_features
from policies.verdicts import PairVerdict
from serve_app.protocols.genrm_api import RankRequest

MARKDOWN = """# Title
Some **bold** text and __more bold__, not ** spaced **.

## Steps
- one
* two
3. three

```python
print(1)
```
"""


def test_features_count_markdown_from_the_text() -> None:
    f = style_features(MARKDOWN)
    assert f["log_length"] == pytest.approx(math.log1p(len(MARKDOWN)))
    assert f == pytest.approx(
        {
            "log_length": math.log1p(len(MARKDOWN)),
            "headers": math.log1p(2),
            "bold": math.log1p(2),
            "list_items": math.log1p(3),
            "code_blocks": math.log1p(1),
        }
    )
    assert style_features("plain") == pytest.approx({"log_length": math.log1p(5), **dict.fromkeys(FEATURES[1:], 0.0)})


def _numeric_gradient(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    return np.array([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in np.eye(len(x))])


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000))
def test_the_joint_objective_has_the_right_gradient_and_hessian(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, p, k = 5, 2, 12
    a = rng.integers(0, n, size=k)
    b = (a + rng.integers(1, n, size=k)) % n
    obs = bt.Outcomes(a, b, rng.uniform(0, 2, size=k), rng.uniform(0, 2, size=k))
    dz = rng.normal(size=(k, p))
    mu = rng.normal(size=n)
    x = rng.normal(size=n + p)

    def value(v: np.ndarray) -> float:
        return bt._objective_parts(v, obs, 0.1, mu, dz, 0.3)[0]

    _, grad, hess = bt._objective_parts(x, obs, 0.1, mu, dz, 0.3)
    np.testing.assert_allclose(grad, _numeric_gradient(value, x), atol=1e-5)
    np.testing.assert_allclose(
        hess, _numeric_gradient(lambda v: bt._objective_parts(v, obs, 0.1, mu, dz, 0.3)[1], x).T, atol=1e-4
    )


def test_without_covariates_the_fit_is_the_plain_one_to_the_bit() -> None:
    rng = np.random.default_rng(3)
    obs = bt.Outcomes.from_records(
        (int(i), int((i + 1 + j) % 6), 1.0, float(j)) for i, j in rng.integers(0, 5, (20, 2))
    )
    plain = bt.fit(6, obs, alpha=0.1)
    assert plain.beta is None and plain.beta_covariance is None
    with pytest.raises(ValueError, match="not both"):
        bt.fit(6, obs, covariates=np.zeros((6, 1)), covariate_diffs=np.zeros((20, 1)))


def test_the_pooled_fit_recovers_a_planted_style_effect() -> None:
    # Many prompts, one chosen/rejected pair each, judged by σ(θ_c − θ_r + β·Δz): the likelihood identifies β.
    rng = np.random.default_rng(7)
    beta_true, gap = 0.8, 0.5
    pairs = []
    for _ in range(3000):
        chosen, rejected = "x" * int(rng.integers(50, 2000)), "x" * int(rng.integers(50, 2000))
        dz = (math.log1p(len(chosen)) - math.log1p(len(rejected))) / 0.9  # about one sd of log length here

        def verdict(first_is_chosen: bool, dz: float = dz) -> PairVerdict:
            p_chosen = 1 / (1 + math.exp(-(gap + beta_true * dz)))
            chosen_wins = rng.random() < p_chosen
            return PairVerdict(ranking=2 if chosen_wins == first_is_chosen else 5)

        pairs.append(StyleJudgedPair(chosen, rejected, verdict(True), verdict(False)))
    effect = style_effect_of_records(pairs, outcome_mode="binary")
    assert effect.fitted and set(effect.coefficients) == {"log_length"}
    assert set(effect.not_fitted) == set(FEATURES[1:])
    # binary outcomes of the debiased margin: the two orders' agreement sharpens the effect, so the scale is not
    # the planted one, but its sign and size are
    assert 0.5 < effect.coefficients["log_length"] < 2.5
    assert effect.stderr["log_length"] < 0.1


def test_the_within_request_fit_recovers_a_planted_style_effect() -> None:
    # Strengths independent of style, many candidates: the prior separates θ from β (see policies.style).
    rng = np.random.default_rng(11)
    n, beta_true = 60, 1.0
    theta = rng.normal(scale=0.5, size=n)
    z = rng.normal(size=(n, 1))
    z = (z - z.mean()) / z.std()
    records = []
    for i in range(n):
        for j in range(i + 1, n):
            p = 1 / (1 + math.exp(-(theta[i] - theta[j] + beta_true * (z[i, 0] - z[j, 0]))))
            wins = rng.binomial(20, p)
            records.append((i, j, float(wins), float(20 - wins)))
    fitted = bt.fit(n, bt.Outcomes.from_records(records), alpha=0.1, covariates=z, covariate_alpha=0.5)
    assert fitted.beta is not None
    assert fitted.beta[0] == pytest.approx(beta_true, abs=0.2)
    assert spearmanr(fitted.theta, theta).statistic > 0.9


def test_the_identifiability_rule() -> None:
    obs = bt.Outcomes.from_records([(0, 1, 1.0, 0.0)])
    kept, why = fittable_features(obs, np.array([[1.0, 1.0, 0, 0, 0], [-1.0, -1.0, 0, 0, 0]]))
    assert kept == [] and why == {"log_length": TOO_FEW, "headers": TOO_FEW} | dict.fromkeys(FEATURES[2:], CONSTANT)
    rr = bt.Outcomes.from_records((i, j, 1.0, 0.0) for i in range(6) for j in range(i + 1, 6))
    z = np.random.default_rng(0).normal(size=(6, 5))
    kept, why = fittable_features(rr, z)
    assert kept == [0, 1, 2] and set(why.values()) == {TOO_FEW}  # 6 − 1 − 3 = 2 spare degrees of freedom
    z[:, 1] = 2 * z[:, 0] - 1
    kept, why = fittable_features(rr, z)
    assert kept == [0, 2, 3] and why["headers"] == COLLINEAR


def _run(n: int, judges: SimulatedJudges, texts: list[str] | None, **config) -> object:
    cfg = SelectionConfig(use_principle=False, **config)
    return asyncio.run(select_best(n, judges.pairwise, None, cfg, texts))


@pytest.mark.parametrize("strategy", ["round_robin", "swiss", "knockout", "adaptive"])
def test_style_control_off_reproduces_the_selection_exactly(strategy: str) -> None:
    quality, length, texts = group(8, 0.3, np.random.default_rng(5))

    def judges() -> LengthBiasedJudges:
        return LengthBiasedJudges(quality, length, 1.0, JudgeModel(), np.random.default_rng(9))

    plain = _run(8, judges(), None, strategy=strategy).model_dump(exclude={"elapsed_s"})  # type: ignore[attr-defined]
    off = _run(8, judges(), texts, strategy=strategy, style_control=False).model_dump(exclude={"elapsed_s"})  # type: ignore[attr-defined]
    assert off == plain and off["style_effect"] is None


def test_two_candidates_fall_back_to_plain_bradley_terry_and_say_why() -> None:
    texts = ["short", "a much longer answer\n- with\n- a list"]
    judges = SimulatedJudges([0.0, 1.0], JudgeModel(), np.random.default_rng(1))
    styled = _run(2, judges, texts, strategy="round_robin", style_control=True)
    judges = SimulatedJudges([0.0, 1.0], JudgeModel(), np.random.default_rng(1))
    plain = _run(2, judges, texts, strategy="round_robin", strengths="bradley_terry")
    effect = styled.style_effect  # type: ignore[attr-defined]
    assert effect is not None and not effect.fitted and "2 judged candidate" in effect.reason
    assert any(d.startswith("style control:") for d in styled.degraded)  # type: ignore[attr-defined]
    assert styled.candidates == plain.candidates  # type: ignore[attr-defined]


def test_style_control_removes_a_length_bias_and_reports_it() -> None:
    plain_rho, styled_rho, betas = [], [], []
    for t in range(30):
        quality, length, texts = group(8, 0.0, np.random.default_rng([1, t]))
        for style, out in ((False, plain_rho), (True, styled_rho)):
            judges = LengthBiasedJudges(quality, length, 1.0, JudgeModel(), np.random.default_rng([2, t]))
            result = _run(8, judges, texts, strategy="round_robin", style_control=style, seed=t)
            scores = [c.score for c in sorted(result.candidates, key=lambda c: c.index)]  # type: ignore[attr-defined]
            out.append(spearmanr(scores, quality).statistic)
            if style:
                betas.append(result.style_effect.coefficients["log_length"])  # type: ignore[attr-defined]
    assert np.mean(styled_rho) > np.mean(plain_rho) + 0.1
    assert np.mean(betas) > 0.5


def test_style_control_needs_the_texts_and_says_so() -> None:
    judges = SimulatedJudges([0.0, 1.0, 2.0], JudgeModel(), np.random.default_rng(1))
    with pytest.raises(ValueError, match="style_control needs the candidate texts"):
        _run(3, judges, None, style_control=True)


def test_style_options_validate_with_clear_messages() -> None:
    with pytest.raises(ValidationError, match="greater than 0"):
        SelectionConfig(style_alpha=0)
    body = {"conversation": [{"role": "user", "content": "q"}], "candidates": ["a", "b"]}
    with pytest.raises(ValidationError, match="style_control"):
        RankRequest.model_validate({**body, "style_control": "sometimes"})
    assert RankRequest.model_validate({**body, "style_control": True}).style_control is True
    assert SelectionConfig().style_control is False
