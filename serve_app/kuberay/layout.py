"""The parameters of a KubeRay deployment: what a cluster operator edits in ``k8s/layouts/*.yaml``.

Everything about the models and the router (engines, placement groups, limits) stays in the Serve config the layout
points to; the layout says only what Kubernetes needs on top: the image, the pod shapes, where pods may run, where
the weights live, and which worker group hosts which judge.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from deployments.autoscaling import POLICY_PATH

JudgeRole = Literal["principle", "pairwise"]

# KubeRay derives pod and service names from the RayService and group names, so it holds them to a DNS-1035 label
# and leaves room for its own suffixes.
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_KUBERAY_NAME = 47


def dns_1035_problem(name: str, *, limit: int = MAX_KUBERAY_NAME) -> str | None:
    """Why ``name`` is not a valid KubeRay name, or None."""
    if len(name) > limit:
        return f"{name!r} is {len(name)} characters long; at most {limit} are allowed"
    if not DNS_1035.match(name):
        return (
            f"{name!r} is not a DNS-1035 label: lower-case letters, digits and '-', starting with a letter and "
            f"ending with a letter or digit"
        )
    return None


def _dns_name(name: str) -> str:
    problem = dns_1035_problem(name)
    if problem:
        raise ValueError(problem)
    return name


DNS_1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _dns_subdomain(name: str | None) -> str | None:
    """A Secret's name: a DNS-1123 subdomain (lower-case alphanumerics, '-' and '.', at most 253 characters)."""
    if name is not None and (len(name) > 253 or not DNS_1123_SUBDOMAIN.match(name)):
        raise ValueError(f"{name!r} is not a valid Secret name (a DNS-1123 subdomain)")
    return name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PodShape(_Strict):
    """A Ray pod: its container resources and where Kubernetes may schedule it."""

    cpu: int = Field(ge=1, description="CPUs requested and limited; Ray sees the same number")
    memory: str = Field(pattern=r"^[0-9]+(Ki|Mi|Gi|Ti)$", description="memory requested and limited, e.g. 64Gi")
    gpus: int = Field(default=0, ge=0, le=16, description="nvidia.com/gpu requested and limited")
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, str | int]] = Field(default_factory=list)


class WorkerGroup(PodShape):
    """A KubeRay worker group. ``judges`` pins the hosted judges' placement groups to these pods (a custom Ray
    resource per judge), so a 1-GPU judge can never take a GPU of the node an 8-GPU placement group needs."""

    name: str
    judges: list[JudgeRole] = Field(min_length=1)
    replicas: int = Field(default=1, ge=0)
    min_replicas: int | None = Field(default=None, ge=0, description="default: replicas")
    max_replicas: int | None = Field(default=None, ge=1, description="default: replicas")

    _name = field_validator("name")(_dns_name)

    @model_validator(mode="after")
    def _replica_bounds(self) -> WorkerGroup:
        low = self.replicas if self.min_replicas is None else self.min_replicas
        high = self.replicas if self.max_replicas is None else self.max_replicas
        if not low <= self.replicas <= high:
            raise ValueError(
                f"worker group {self.name!r}: need min_replicas <= replicas <= max_replicas, got {low}, "
                f"{self.replicas}, {high}"
            )
        self.min_replicas, self.max_replicas = low, high
        return self


class ModelStore(_Strict):
    """Weights on a shared volume: a download Job fills the Hugging Face cache on it once (with the hub token from
    a Secret), then every Ray pod reads the checkpoints from there instead of the hub."""

    claim_name: str = "genrm-models"
    mount_path: str = "/models"
    size: str = Field(default="1200Gi", pattern=r"^[0-9]+(Gi|Ti)$")
    storage_class: str | None = Field(default=None, description="default: the cluster's default class")
    hub_token_secret: str = Field(default="hf-token", description="Secret with the hub token under key 'token'")
    offline: bool = Field(default=True, description="HF_HUB_OFFLINE on Ray pods: load only what is on the volume")

    @property
    def hf_home(self) -> str:
        return f"{self.mount_path.rstrip('/')}/hf"


class ApiToken(_Strict):
    """The router's bearer token, from a Kubernetes Secret. Every Ray container (head and workers) gets it in the
    environment variable the Serve config's ``router.auth_token_env`` names (default ``GENRM_API_TOKEN``); Serve
    replicas inherit their raylet's environment, so the router replicas read it wherever they are placed."""

    secret: str | None = Field(default=None, description="the Secret's name; default: '<layout name>-api-token'")
    key: str = Field(default="token", pattern=r"^[-._a-zA-Z0-9]+$", description="the key holding the token")
    required: bool = Field(
        default=True,
        description="true: the Ray pods do not start without the Secret (secretKeyRef optional: false), so the "
        "service never serves without auth; false: no Secret, no token, every route open",
    )
    secret_template: bool = Field(
        default=False,
        description="also render api-token-secret.yaml: the Secret without its value, to fill in (e.g. kubectl "
        "create secret generic <secret> --from-literal=token=...)",
    )

    _secret = field_validator("secret")(_dns_subdomain)


class JudgeAutoscaling(_Strict):
    """Serve autoscaling for one judge: replicas follow the engines' own load, the sequences vLLM runs and queues
    (deployments/autoscaling.py), between the bounds."""

    min_replicas: int = Field(ge=1)
    max_replicas: int = Field(ge=1)
    target_sequences: float = Field(default=64, gt=0, description="engine sequences (running + waiting) per replica")
    upscale_delay_s: float = Field(default=30, ge=0)
    downscale_delay_s: float = Field(
        default=600, ge=0, description="an engine takes minutes to load: scale down slowly"
    )

    @model_validator(mode="after")
    def _ordered(self) -> JudgeAutoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} > max_replicas {self.max_replicas}")
        return self

    def serve_config(self) -> dict[str, Any]:
        """The deployment's ``autoscaling_config`` (Serve's AutoscalingConfig fields)."""
        return {
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "upscale_delay_s": self.upscale_delay_s,
            "downscale_delay_s": self.downscale_delay_s,
            "policy": {"policy_function": POLICY_PATH, "policy_kwargs": {"target_sequences": self.target_sequences}},
        }


class Layout(_Strict):
    name: str = Field(description="the RayService name")
    serve_config: str = Field(description="the Serve config file, relative to this layout file")
    image: str = Field(description="the image built from k8s/Dockerfile, for head and workers")
    ray_version: str = "2.60.0"
    initializing_timeout: str = Field(
        default="60m",
        pattern=r"^[0-9]+[smh]$",
        description="how long KubeRay waits for a new cluster to serve before recreating it (model loads)",
    )
    upgrade_strategy: Literal["None", "NewCluster"] = Field(
        default="None",
        description="None: Serve config changes roll in place and cluster changes wait for a redeploy; "
        "NewCluster: zero-downtime cluster upgrades, but they need a second cluster's GPUs for the switch-over",
    )
    service_type: Literal["ClusterIP", "LoadBalancer", "NodePort"] = "ClusterIP"
    models: ModelStore = Field(default_factory=ModelStore)
    api_token: ApiToken = Field(default_factory=ApiToken)
    head: PodShape
    worker_groups: list[WorkerGroup] = Field(min_length=1)
    judge_autoscaling: dict[JudgeRole, JudgeAutoscaling] = Field(default_factory=dict)
    autoscaler_idle_timeout_s: int = Field(default=900, ge=60)

    _name = field_validator("name")(_dns_name)

    @model_validator(mode="after")
    def _groups(self) -> Layout:
        names = [g.name for g in self.worker_groups]
        if len(set(names)) != len(names):
            raise ValueError(f"worker group names must be unique, got {names}")
        return self

    @property
    def api_token_secret(self) -> str:
        return self.api_token.secret or f"{self.name}-api-token"

    @property
    def node_autoscaling(self) -> bool:
        return any(g.min_replicas != g.max_replicas for g in self.worker_groups)


def load_layout(path: str | Path) -> Layout:
    return Layout.model_validate(yaml.safe_load(Path(path).read_text()))
