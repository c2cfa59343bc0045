"""Two training jobs share the CPU default's real judges through a router with ``router.tenants``: the reported
mixing case (the same prompt, no group_id, group_size 4, 8 samples at once) gives each job one cohort of its own four
samples, judged by the real engines; a wrong token is refused."""

from __future__ import annotations

import concurrent.futures

import httpx
from live_service import BASE, CONVERSATION, PAIRWISE_DEPLOYMENT, cpu_args, deployed, judge_handle, smollm2_folder

from serve_app.app import bind_router
from serve_app.config import AppConfig

TOKENS = {"GENRM_TOKEN_A": "job-a-secret", "GENRM_TOKEN_B": "job-b-secret"}


def test_two_jobs_sending_the_same_prompt_get_cohorts_of_their_own(service: httpx.Client) -> None:
    config = AppConfig.model_validate(
        {
            "pairwise": cpu_args()["pairwise"],  # the CPU default's pairwise judge, reached through its handle
            "router": {
                "tenants": [
                    {"name": "job-a", "token_env": "GENRM_TOKEN_A"},
                    {"name": "job-b", "token_env": "GENRM_TOKEN_B", "weight": 2},
                ],
                "cohorts": {"group_size": 4, "group_timeout_s": 300, "strategy": "knockout"},
                # the tenants' tokens reach the router replica in its environment, as a Secret's would on KubeRay
                "deployment": {"ray_actor_options": {"num_cpus": 0, "runtime_env": {"env_vars": TOKENS}}},
            },
        }
    )
    judge = judge_handle(PAIRWISE_DEPLOYMENT)
    app = bind_router(config, {"pairwise": str(smollm2_folder())}, None, judge, name="TenantRouter")
    answers = ["Paris.", "Lyon.", "The capital of France is Paris.", "Marseille."]
    sends = [(token, a) for a in answers for token in TOKENS.values()]  # the two jobs' samples interleaved
    with deployed(app, "tenants", service) as prefix:

        def post(send: tuple[str, str]) -> httpx.Response:
            token, answer = send
            body = {"conversation": CONVERSATION, "response": answer}
            headers = {"Authorization": f"Bearer {token}"}
            return httpx.post(f"{BASE}{prefix}/v1/reward", json=body, headers=headers, timeout=600)

        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            replies = list(pool.map(post, sends))
        wrong = httpx.post(f"{BASE}{prefix}/v1/reward", json={}, headers={"Authorization": "Bearer nope"})
    assert [r.status_code for r in replies] == [200] * 8, [r.text for r in replies]
    assert wrong.status_code == 401
    by_job = {
        token: [r.json() for (t, _), r in zip(sends, replies, strict=True) if t == token] for token in TOKENS.values()
    }
    cohorts = {token: {o["cohort_id"] for o in out} for token, out in by_job.items()}
    assert all(len(ids) == 1 for ids in cohorts.values()) and len(set.union(*cohorts.values())) == 2
    for out in by_job.values():
        assert {o["size_judged"] for o in out} == {4} and {o["closed_by"] for o in out} == {"full"}
        assert sorted(o["rank"] for o in out) == [1, 2, 3, 4]
