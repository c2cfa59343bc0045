"""The application builder: ``import_path: serve_app.app:build_app`` in config.yaml.

Validates the configuration, prepares local model folders (the CPU configs convert their packaged GGUF once), binds
one LLMServer per hosted judge (each on its own placement group) and the router that holds their handles. Two
judges that host the same model id share one LLMServer (``AppConfig.engine_role``; configs/cpu-quality.yaml).

Cohorts and router replicas: the samples of one cohort must meet in one process. With one router replica (the
CPU default) that replica holds the cohorts. With several (``router.deployment.num_replicas`` > 1, or autoscaling),
the builder adds ``router.cohorts.owners`` ``CohortOwner`` deployments (``serve_app.ingress.deployment``), each with
exactly one replica: every router replica forwards ``/v1/reward`` over a handle to the owner its cohort key hashes
to, and that owner holds and judges the cohort. Everything else is served by whichever replica receives it.
"""

from __future__ import annotations

from typing import Any

from deployments.hosting import build_judge_deployment
from serve_app.config import AppConfig, _JudgeConfig
from serve_app.core.judge_pool import JUDGE_HOSTS, judge_llm_configs, tokenizer_source
from serve_app.ingress.deployment import CohortOwner, Router

#: the deployment that holds the cohorts when the router has several replicas
COHORT_OWNER = "CohortOwner"


def build_app(args: dict[str, Any]) -> Any:
    """Serve application builder (``serve run config.yaml`` calls it with the application's ``args``)."""
    config = AppConfig.model_validate(args)
    llm_fields = judge_llm_configs(config)
    servers: dict[str, Any] = {}
    tokenizers: dict[str, str] = {}
    for role, host in JUDGE_HOSTS.items():
        judge: _JudgeConfig | None = getattr(config, role)
        if judge is None:
            continue
        tokenizers[role] = tokenizer_source(judge, llm_fields.get(role))
        owner = config.engine_role(role)
        if owner != role:
            # The same bound deployment for both roles: Serve builds it once and hands the router two handles to it.
            servers[role] = servers[owner]
        elif role in llm_fields:
            servers[role] = build_judge_deployment(llm_fields[role], host.NAME_PREFIX)
    return bind_router(config, tokenizers, servers.get("principle"), servers.get("pairwise"))


def bind_router(
    config: AppConfig,
    tokenizers: dict[str, str],
    principle: Any = None,
    pairwise: Any = None,
    *,
    name: str = "Router",
    owner_name: str = COHORT_OWNER,
) -> Any:
    """The router deployment in front of the given judge deployments (or handles), with the cohort owner when the
    router has several replicas (see the module docstring)."""
    limits = config.router
    # Serve's own queue must never be what refuses requests: the router's admission control answers 503 itself.
    # Per-sample rewards wait in the replica for their cohort, so they need room of their own: held back in Serve's
    # queue, a cohort's last samples could never join it.
    ongoing = limits.max_concurrent_requests + limits.max_queued_requests + 32
    if limits.cohorts.enabled:
        ongoing += limits.cohorts.max_waiting_samples
    options: dict[str, Any] = {"name": name, "max_ongoing_requests": ongoing}
    options.update(limits.deployment)
    dumped = config.model_dump(mode="json")
    if limits.auth_token is not None:  # JSON dumps hide secrets; the router needs the value
        dumped["router"]["auth_token"] = limits.auth_token.get_secret_value()
    owner: Any = None
    if limits.cohorts.enabled and limits.replicated:
        # Bookkeeping and orchestration only (the judges do the work): an owner takes no CPU of its own, so the
        # placement of the router replicas and judges is unchanged. Several owners are shards: each cohort key
        # hashes to one (JudgingService.owner_of), and each shard is its own one-replica deployment, so a key never
        # moves to another owner while its cohort is open.
        shards = limits.cohorts.owners
        owner = [
            CohortOwner.options(
                name=owner_name if shards == 1 else f"{owner_name}{k}",
                num_replicas=1,
                max_ongoing_requests=ongoing,
                ray_actor_options={**limits.deployment.get("ray_actor_options", {}), "num_cpus": 0},
            ).bind(dumped, tokenizers, principle, pairwise)
            for k in range(shards)
        ]
        owner = owner[0] if shards == 1 else owner
    return Router.options(**options).bind(dumped, tokenizers, principle, pairwise, owner)
