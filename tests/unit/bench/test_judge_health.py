"""The judge-health benchmark's own arithmetic: shares from scraped counters, real RM-Bench groups, the report."""

from __future__ import annotations

from bench.judge_health import SHARES, report, rmbench_groups, scraped_counts, shares
from serve_app.local_service import shared_path

PAGE = """# TYPE ray_genrm_judge_health_events_total counter
ray_genrm_judge_health_events_total{judge="pairwise",event="call",tenant="default"} 40.0
ray_genrm_judge_health_events_total{judge="pairwise",event="cut_off",tenant="default"} 4.0
ray_genrm_judge_health_events_total{judge="pairwise",event="cut_off",tenant="job-b"} 6.0
ray_genrm_judge_health_events_total{judge="pairwise",event="call",tenant="job-b"} 60.0
ray_genrm_judge_health_events_total{judge="pairwise",event="verdict",tenant="default"} 30.0
"""


def test_shares_come_from_the_counters_summed_over_tenants() -> None:
    counts = scraped_counts(PAGE)
    rows = {label: (share, num, den) for label, share, num, den in shares(counts)}
    assert rows["pairwise: cut at max_tokens"] == (0.1, 10.0, 100.0)
    assert rows["pairwise: ties"] == (0.0, 0.0, 30.0)
    assert rows["pairwise: order flips"][0] is None  # nothing judged in both orders: no share
    assert len(rows) == len(SHARES)


def test_rmbench_groups_are_a_prompt_with_its_three_chosen_and_three_rejected() -> None:
    groups = rmbench_groups(shared_path("data", "rmbench", "chat_filtered.json"), 3)
    assert len(groups) == 3 and all(len(g["candidates"]) == 6 for g in groups)
    assert groups[0]["conversation"][0]["role"] == "user"


def test_the_report_names_the_cpu_and_every_share() -> None:
    text = report(shares(scraped_counts(PAGE)), [0.2, -0.1], 2, 30.0)
    assert "| pairwise: cut at max_tokens | 10.0% | 10 / 100 |" in text and "2 groups" in text
    assert "CPU default" in text and "judge_health.png" in text
