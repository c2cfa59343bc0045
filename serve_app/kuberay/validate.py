"""Offline checks of a RayService manifest, without a cluster, a GPU or a download.

1. The manifest against the RayService CRD's schema, made strict the way ``kubectl apply`` with server-side field
   validation is: an unknown (e.g. misspelled) field is an error, not silently pruned.
2. KubeRay's name rules: the RayService and its worker groups are DNS-1035 labels of at most 47 characters.
3. ``serveConfigV2`` through Ray's ServeDeploySchema, the application config, and each hosted model through
   ray.serve.llm's LLMConfig (:func:`serve_app.config_check.validate_serve_config`).
4. Fit: every judge's placement groups (and the router replicas) are placed on the worker pods the way Ray's
   scheduler must place them — STRICT_PACK bundles together on one pod — with the GPUs, CPUs and pinning resources
   the pods offer, both when the cluster starts and at the autoscaling maxima.
5. The router's bearer token: when one Ray container sets the variable ``router.auth_token_env`` names, every Ray
   container sets it the same way (a router replica on a pod without it would serve every route without auth).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from serve_app.kuberay.layout import dns_1035_problem
from serve_app.kuberay.render import ROLES

UPGRADE_STRATEGIES = ("None", "NewCluster", "NewClusterWithIncrementalUpgrade")
GPU_RESOURCE = "nvidia.com/gpu"


# --- 1. the CRD schema -------------------------------------------------------------------------------------------


def crd_json_schema(crd: dict[str, Any], version: str = "v1") -> dict[str, Any]:
    """The CRD's openAPIV3Schema for ``version`` as a strict JSON schema: objects that list their properties (and
    neither allow extra keys nor preserve unknown fields) reject keys they do not list."""
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            return _strict(entry["schema"]["openAPIV3Schema"])
    raise ValueError(f"the CRD has no version {version!r}")


def _strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _strict(value) for key, value in node.items()}
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def load_crd_schema(path: str | Path) -> dict[str, Any]:
    return crd_json_schema(yaml.safe_load(Path(path).read_text()))


def schema_problems(manifest: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft7Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(manifest), key=lambda e: list(map(str, e.absolute_path))):
        problems.append(f"{_path(error.absolute_path) or '<root>'}: {error.message}")
    return problems


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# --- 2. names and what the operator (not the schema) checks -------------------------------------------------------


def operator_problems(manifest: dict[str, Any]) -> list[str]:
    problems = []
    name = manifest.get("metadata", {}).get("name", "")
    if (problem := dns_1035_problem(name)) is not None:
        problems.append(f"metadata.name: {problem}")
    cluster = manifest.get("spec", {}).get("rayClusterConfig", {})
    groups = [g.get("groupName", "") for g in cluster.get("workerGroupSpecs", [])]
    for i, group in enumerate(groups):
        if (problem := dns_1035_problem(group)) is not None:
            problems.append(f"spec.rayClusterConfig.workerGroupSpecs[{i}].groupName: {problem}")
    if len(set(groups)) != len(groups):
        problems.append(f"spec.rayClusterConfig.workerGroupSpecs: group names repeat: {groups}")
    strategy = manifest.get("spec", {}).get("upgradeStrategy", {}).get("type")
    if strategy is not None and strategy not in UPGRADE_STRATEGIES:
        problems.append(f"spec.upgradeStrategy.type: {strategy!r} is not one of {UPGRADE_STRATEGIES}")
    pods = [("spec.rayClusterConfig.headGroupSpec", cluster.get("headGroupSpec", {}))]
    workers = cluster.get("workerGroupSpecs", [])
    pods += [(f"spec.rayClusterConfig.workerGroupSpecs[{i}]", group) for i, group in enumerate(workers)]
    for where, group in pods:
        for j, container in enumerate(group.get("template", {}).get("spec", {}).get("containers", [])):
            resources = container.get("resources", {})
            request = resources.get("requests", {}).get(GPU_RESOURCE)
            limit = resources.get("limits", {}).get(GPU_RESOURCE)
            if request is not None and str(request) != str(limit):
                problems.append(
                    f"{where}.template.spec.containers[{j}].resources: {GPU_RESOURCE} request {request} needs an "
                    f"equal limit (got {limit})"
                )
            if where.endswith("headGroupSpec") and (limit or request):
                problems.append(f"{where}: the head must not take GPUs (it runs no engine); remove {GPU_RESOURCE}")
    return problems


# --- 4. placement ---------------------------------------------------------------------------------------------------


class _Pod:
    def __init__(self, label: str, free: dict[str, float]) -> None:
        self.label = label
        self.free = free

    def fits(self, need: dict[str, float]) -> bool:
        return all(self.free.get(key, 0.0) + 1e-9 >= amount for key, amount in need.items() if amount)

    def take(self, need: dict[str, float]) -> None:
        for key, amount in need.items():
            self.free[key] = self.free.get(key, 0.0) - amount


def _cpu_quantity(value: Any) -> float:
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _pod_resources(group: dict[str, Any]) -> dict[str, float]:
    """The Ray resources a KubeRay pod advertises: the group's ``resources``, else ``rayStartParams``, else the
    Ray container's limits (requests when no limit is set)."""
    container = group["template"]["spec"]["containers"][0]
    limits = {**container.get("resources", {}).get("requests", {}), **container.get("resources", {}).get("limits", {})}
    params = group.get("rayStartParams", {})
    declared = {key: float(value) for key, value in group.get("resources", {}).items()}
    out = {
        "CPU": _cpu_quantity(params.get("num-cpus", limits.get("cpu", 0))),
        "GPU": float(params.get("num-gpus", limits.get(GPU_RESOURCE, 0))),
    }
    out.update(declared)
    return out


def _pods(cluster: dict[str, Any], *, peak: bool) -> list[_Pod]:
    pods = [_Pod("head", _pod_resources(cluster["headGroupSpec"]))]
    for group in cluster.get("workerGroupSpecs", []):
        count = group.get("maxReplicas" if peak else "replicas", group.get("minReplicas", 0)) or 0
        count *= group.get("numOfHosts", 1)
        pods += [_Pod(f"{group['groupName']}-{i}", _pod_resources(group)) for i in range(count)]
    return pods


def _replicas(deployment: dict[str, Any], *, peak: bool) -> int:
    scaling = deployment.get("autoscaling_config")
    if scaling:
        if peak:
            return int(scaling.get("max_replicas", 1))
        return int(scaling.get("initial_replicas") or scaling.get("min_replicas", 1))
    return int(deployment.get("num_replicas", 1))


def _placement_groups(app: Any, *, peak: bool) -> Iterator[tuple[str, list[dict[str, float]], str]]:
    """(label, bundles, strategy) for every placement group and router replica the application will ask for."""
    for role in ROLES:
        llm = app.llm_configs.get(role)
        if llm is None:
            continue
        engine = llm.get_engine_config()
        for i in range(_replicas(llm.deployment_config, peak=peak)):
            yield f"{role} judge replica {i + 1}", engine.placement_bundles, engine.placement_strategy
    router = app.config.router.deployment
    cpus = float(router.get("ray_actor_options", {}).get("num_cpus", 1))
    for i in range(_replicas(router, peak=peak)):
        yield f"router replica {i + 1}", [{"CPU": cpus}], "PACK"


def _strip_accelerator_hints(bundle: dict[str, float]) -> dict[str, float]:
    # Ray adds a tiny accelerator_type:<GPU model> demand that real GPU nodes advertise by themselves.
    return {key: value for key, value in bundle.items() if not key.startswith("accelerator_type:")}


def _place(pods: list[_Pod], bundles: list[dict[str, float]], strategy: str) -> bool:
    bundles = [_strip_accelerator_hints(b) for b in bundles]
    if strategy in ("STRICT_PACK", "PACK"):
        total: dict[str, float] = {}
        for bundle in bundles:
            for key, amount in bundle.items():
                total[key] = total.get(key, 0.0) + amount
        for pod in pods:
            if pod.fits(total):
                pod.take(total)
                return True
        if strategy == "STRICT_PACK":
            return False
    used: set[int] = set()
    taken: list[tuple[_Pod, dict[str, float]]] = []
    for bundle in sorted(bundles, key=lambda b: -b.get("GPU", 0)):
        for i, pod in enumerate(pods):
            if strategy == "STRICT_SPREAD" and i in used:
                continue
            if pod.fits(bundle):
                pod.take(bundle)
                taken.append((pod, bundle))
                used.add(i)
                break
        else:
            for pod, bundle in taken:  # roll back: a placement group is all or nothing
                pod.take({key: -amount for key, amount in bundle.items()})
            return False
    return True


def fit_problems(cluster: dict[str, Any], apps: list[Any]) -> list[str]:
    problems = []
    for peak in (False, True):
        when = "at the autoscaling maxima" if peak else "when the cluster starts"
        pods = _pods(cluster, peak=peak)
        demands = [d for app in apps for d in _placement_groups(app, peak=peak)]
        # Largest first, as a GPU scheduler would have to: an 8-GPU group placed last may find every node split.
        demands.sort(key=lambda d: -sum(b.get("GPU", 0) for b in d[1]))
        for label, bundles, strategy in demands:
            if not _place(pods, bundles, strategy):
                gpus = sum(b.get("GPU", 0) for b in bundles)
                offer = ", ".join(f"{p.label}: {_describe(p.free)}" for p in pods)
                problems.append(
                    f"{when}, the {label} ({len(bundles)} bundles, {gpus:g} GPUs, {strategy}) fits on no worker "
                    f"pod; free after the larger groups: {offer}"
                )
    return problems


def _describe(free: dict[str, float]) -> str:
    return " ".join(f"{key}={value:g}" for key, value in sorted(free.items()) if value) or "nothing"


# --- 5. the router's token -----------------------------------------------------------------------------------------


def _ray_containers(cluster: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, container) of the Ray container (KubeRay's first) of the head and of each worker group."""
    groups = [("spec.rayClusterConfig.headGroupSpec", cluster.get("headGroupSpec", {}))]
    groups += [
        (f"spec.rayClusterConfig.workerGroupSpecs[{i}]", group)
        for i, group in enumerate(cluster.get("workerGroupSpecs", []))
    ]
    for where, group in groups:
        containers = group.get("template", {}).get("spec", {}).get("containers", [])
        if containers:
            yield f"{where}.template.spec.containers[0]", containers[0]


def token_problems(cluster: dict[str, Any], apps: list[Any]) -> list[str]:
    problems = []
    names = set()
    for app in apps:
        router = app.config.router
        if router.tenants:
            names |= {t.token_env for t in router.tenants}
        elif router.auth_token is None:
            names.add(router.auth_token_env)
    for name in sorted(n for n in names if n):
        found = {
            where: next((e for e in container.get("env", []) if e.get("name") == name), None)
            for where, container in _ray_containers(cluster)
        }
        settings = {yaml.safe_dump(entry, sort_keys=True) for entry in found.values() if entry is not None}
        if not settings:
            continue  # no container has a token: the router serves without auth, everywhere alike
        missing = [where for where, entry in found.items() if entry is None]
        if missing:
            problems.append(
                f"{', '.join(missing)}: no {name}, which other Ray containers set; a router replica placed there "
                f"would serve every route without the bearer token"
            )
        if len(settings) > 1:
            problems.append(f"the Ray containers set {name} differently; every router replica must read one token")
    return problems


# --- all together ---------------------------------------------------------------------------------------------------


def validate_rayservice(manifest: dict[str, Any], crd_schema: dict[str, Any] | None = None) -> list[str]:
    """Every problem found in ``manifest`` (empty: valid). ``crd_schema`` from :func:`load_crd_schema`; without it
    the schema check is skipped."""
    from serve_app.config_check import validate_serve_config

    if manifest.get("kind") != "RayService":
        return [f"kind: expected RayService, got {manifest.get('kind')!r}"]
    problems = schema_problems(manifest, crd_schema) if crd_schema is not None else []
    problems += operator_problems(manifest)
    spec = manifest.get("spec", {})
    text = spec.get("serveConfigV2")
    if not isinstance(text, str):
        return [*problems, "spec.serveConfigV2: missing (this project's RayService is defined by its Serve config)"]
    try:
        apps = validate_serve_config(yaml.safe_load(text))
    except (ValidationError, ValueError) as exc:
        return [*problems, f"spec.serveConfigV2: {exc}"]
    cluster = spec.get("rayClusterConfig", {})
    try:
        problems += fit_problems(cluster, apps)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        problems.append(f"spec.rayClusterConfig: cannot read the pods' resources ({exc!r})")
    problems += token_problems(cluster, apps)
    return problems


def validate_manifest_file(path: str | Path, crd_schema: dict[str, Any] | None = None) -> list[str]:
    """Problems in every RayService of a (multi-document) manifest file; other kinds are left to kubectl."""
    problems = []
    for document in yaml.safe_load_all(Path(path).read_text()):
        if document and document.get("kind") == "RayService":
            name = document.get("metadata", {}).get("name", "?")
            problems += [f"RayService {name}: {p}" for p in validate_rayservice(document, crd_schema)]
    return problems
