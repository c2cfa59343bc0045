"""The KubeRay manifests, offline: generated from their sources, valid against the RayService CRD, the Serve config
through Ray's own schema classes, KubeRay's name rules, and every placement group fitting the worker pods."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from serve_app.__main__ import main
from serve_app.config import RouterConfig
from serve_app.kuberay.layout import Layout, load_layout
from serve_app.kuberay.render import hub_checkpoints, output_dir, rayservice, render, serve_document
from serve_app.kuberay.validate import load_crd_schema, schema_problems, validate_rayservice
from serve_app.local_service import shared_path

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
LAYOUTS = sorted((ROOT / "k8s" / "layouts").glob("*.yaml"))
# The CRD is data the project reads but does not ship; point KUBERAY_RAYSERVICE_CRD at a copy to use another.
CRD = Path(os.environ.get("KUBERAY_RAYSERVICE_CRD") or shared_path("kuberay", "ray.io_rayservices.yaml"))


@pytest.fixture(scope="module")
def crd_schema() -> dict[str, Any]:
    if not CRD.is_file():
        pytest.skip(f"the RayService CRD is not at {CRD} (set KUBERAY_RAYSERVICE_CRD to its path to run this check)")
    return load_crd_schema(CRD)


def _manifest(layout: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "k8s" / layout / "rayservice.yaml").read_text())


@pytest.fixture(scope="module")
def production() -> dict[str, Any]:
    return _manifest("production")


@pytest.fixture(scope="module")
def single_node() -> dict[str, Any]:
    return _manifest("single-node")


def _serve(manifest: dict[str, Any]) -> dict[str, Any]:
    return yaml.safe_load(manifest["spec"]["serveConfigV2"])


def _with_serve(manifest: dict[str, Any], serve: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(manifest)
    out["spec"]["serveConfigV2"] = yaml.safe_dump(serve, sort_keys=False)
    return out


def _group(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    return next(g for g in manifest["spec"]["rayClusterConfig"]["workerGroupSpecs"] if g["groupName"] == name)


def _worker_container(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    return _group(manifest, name)["template"]["spec"]["containers"][0]


def test_two_layouts_exist() -> None:
    assert [p.stem for p in LAYOUTS] == ["production", "single-node"]


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda p: p.stem)
def test_committed_manifests_are_rendered_from_their_sources(layout: Path) -> None:
    """serveConfigV2 has one source: a hand edit of the manifest, or a Serve config edit not rendered, fails."""
    for name, text in render(layout, ROOT).items():
        committed = output_dir(layout) / name
        assert committed.is_file(), f"{committed} is missing; run python -m serve_app render-k8s {layout}"
        assert committed.read_text() == text, f"{committed} is out of date; run python -m serve_app render-k8s"


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda p: p.stem)
def test_serve_config_is_the_file_plus_the_layout(layout: Path) -> None:
    spec = load_layout(layout)
    embedded = _serve(_manifest(layout.stem))
    assert embedded == serve_document(spec, layout.parent)
    source = yaml.safe_load((layout.parent / spec.serve_config).read_text())
    source_args = source["applications"][0]["args"]
    args = embedded["applications"][0]["args"]
    assert args["router"] == source_args["router"]
    for role in ("principle", "pairwise"):
        llm, source_llm = args[role]["hosted"]["llm_config"], source_args[role]["hosted"]["llm_config"]
        assert llm["engine_kwargs"] == source_llm["engine_kwargs"]
        assert llm["model_loading_config"] == source_llm["model_loading_config"]
        # Only the pinning resource is added to the bundles.
        unpinned = [
            {k: v for k, v in b.items() if k != f"genrm_{role}"} for b in llm["placement_group_config"]["bundles"]
        ]
        assert unpinned == source_llm["placement_group_config"]["bundles"]


@pytest.mark.parametrize("layout", ["production", "single-node"])
def test_manifest_is_valid_against_the_crd(layout: str, crd_schema: dict[str, Any]) -> None:
    assert schema_problems(_manifest(layout), crd_schema) == []


@pytest.mark.parametrize("layout", ["production", "single-node"])
def test_manifest_passes_every_offline_check(layout: str) -> None:
    assert validate_rayservice(_manifest(layout)) == []


def test_production_shape(production: dict[str, Any]) -> None:
    spec = production["spec"]
    assert production["metadata"]["annotations"]["ray.io/initializing-timeout"] == "60m"
    assert spec["upgradeStrategy"]["type"] == "None"
    assert spec["serveService"]["spec"]["ports"] == [{"name": "serve", "port": 8000, "targetPort": 8000}]
    cluster = spec["rayClusterConfig"]
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    assert "nvidia.com/gpu" not in head["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert [g["groupName"] for g in cluster["workerGroupSpecs"]] == ["principle", "pairwise"]
    assert _worker_container(production, "pairwise")["resources"]["limits"]["nvidia.com/gpu"] == "8"
    pairwise = _serve(production)["applications"][0]["args"]["pairwise"]["hosted"]["llm_config"]
    assert pairwise["placement_group_config"]["strategy"] == "STRICT_PACK"
    assert pairwise["engine_kwargs"]["tensor_parallel_size"] == 8
    for group in cluster["workerGroupSpecs"]:
        container = group["template"]["spec"]["containers"][0]
        assert container["readinessProbe"]["timeoutSeconds"] >= 10
        env = {e["name"]: e for e in container["env"]}
        assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "hf-token"
        assert env["HF_HOME"]["value"].startswith("/models")


def _ray_containers(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The Ray container (KubeRay's first) of the head and of every worker group."""
    cluster = manifest["spec"]["rayClusterConfig"]
    out = {"head": cluster["headGroupSpec"]["template"]["spec"]["containers"][0]}
    for group in cluster["workerGroupSpecs"]:
        out[group["groupName"]] = group["template"]["spec"]["containers"][0]
    return out


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda p: p.stem)
def test_every_ray_container_reads_the_router_token_from_the_secret(layout: Path) -> None:
    """Serve replicas inherit their raylet's environment: with the variable the router reads
    (``router.auth_token_env``) in the head's and every worker group's Ray container, a router replica has the
    token wherever it is placed, and a missing Secret keeps the pods from starting rather than serving openly."""
    spec = load_layout(layout)
    manifest = _manifest(layout.stem)
    router = RouterConfig.model_validate(_serve(manifest)["applications"][0]["args"]["router"])
    assert router.auth_token is None  # a token written into serveConfigV2 would be in clear and win over the Secret
    assert router.auth_token_env == "GENRM_API_TOKEN"
    containers = _ray_containers(manifest)
    assert list(containers) == ["head", *(g.name for g in spec.worker_groups)]
    for where, container in containers.items():
        entries = [e for e in container["env"] if e["name"] == router.auth_token_env]
        assert entries == [
            {
                "name": router.auth_token_env,
                "valueFrom": {
                    "secretKeyRef": {"name": spec.api_token.secret, "key": spec.api_token.key, "optional": False}
                },
            }
        ], where
    assert spec.api_token.secret == f"{spec.name}-api-token" == spec.api_token_secret


def _scratch_layout(tmp_path: Path, layout: Path, change: dict[str, Any], router: dict[str, Any] | None = None) -> Path:
    """A copy of ``layout`` and its Serve config under ``tmp_path``, with ``change`` merged into the layout's
    ``api_token`` and ``router`` into the Serve config's router section."""
    data = yaml.safe_load(layout.read_text())
    serve = yaml.safe_load((layout.parent / data["serve_config"]).read_text())
    serve["applications"][0]["args"]["router"].update(router or {})
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "serve.yaml").write_text(yaml.safe_dump(serve, sort_keys=False))
    data["serve_config"] = "../../configs/serve.yaml"
    data["api_token"] = {**data.get("api_token", {}), **change}
    path = tmp_path / "k8s" / "layouts" / "scratch.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_token_settings_of_the_layout(tmp_path: Path) -> None:
    path = _scratch_layout(
        tmp_path,
        LAYOUTS[0],
        {"secret": None, "key": "bearer", "required": False, "secret_template": True},
        router={"auth_token_env": "MY_TOKEN"},
    )
    files = render(path, tmp_path)
    assert sorted(files) == ["api-token-secret.yaml", "models.yaml", "rayservice.yaml"]
    manifest = yaml.safe_load(files["rayservice.yaml"])
    for where, container in _ray_containers(manifest).items():
        env = {e["name"]: e for e in container["env"]}
        assert "GENRM_API_TOKEN" not in env, where
        ref = env["MY_TOKEN"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "genrm-api-token", "key": "bearer", "optional": True}, where  # name from the layout's
    [secret] = yaml.safe_load_all(files["api-token-secret.yaml"])
    # A template without a value: applied as it is, the pods wait for the key instead of running with an empty token.
    assert secret == {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "genrm-api-token"}, "type": "Opaque"}
    assert "kubectl create secret generic genrm-api-token --from-literal=bearer=" in files["api-token-secret.yaml"]
    assert validate_rayservice(manifest) == []


@pytest.mark.parametrize(
    ("router", "api_token", "message"),
    [
        ({"auth_token": "s3cret"}, {}, "router.auth_token would be written into serveConfigV2"),
        ({"auth_token_env": None}, {}, "router.auth_token_env is null"),
    ],
)
def test_token_settings_that_cannot_work_are_refused(
    tmp_path: Path, router: dict[str, Any], api_token: dict[str, Any], message: str
) -> None:
    path = _scratch_layout(tmp_path, LAYOUTS[0], api_token, router=router)
    with pytest.raises(ValueError, match=message):
        render(path, tmp_path)


def test_each_tenants_token_comes_from_its_own_key_of_the_secret(tmp_path: Path) -> None:
    tenants = [{"name": "grpo-a", "token_env": "TOKEN_A"}, {"name": "grpo-b", "token_env": "TOKEN_B", "weight": 2}]
    path = _scratch_layout(tmp_path, LAYOUTS[0], {}, router={"tenants": tenants})
    manifest = rayservice(load_layout(path), path.parent)
    for where, container in _ray_containers(manifest).items():
        env = {e["name"]: e for e in container["env"]}
        assert "GENRM_API_TOKEN" not in env, where  # with tenants, the router reads only theirs
        for tenant in tenants:
            ref = env[tenant["token_env"]]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": "genrm-api-token", "key": f"token-{tenant['name']}", "optional": False}, where
    assert validate_rayservice(manifest) == []
    worker = _worker_container(manifest, "pairwise")
    worker["env"] = [e for e in worker["env"] if e["name"] != "TOKEN_B"]
    assert any("no TOKEN_B" in p for p in validate_rayservice(manifest))


def test_no_token_variable_without_auth(tmp_path: Path) -> None:
    path = _scratch_layout(tmp_path, LAYOUTS[0], {"required": False}, router={"auth_token_env": None})
    manifest = rayservice(load_layout(path), path.parent)
    for container in _ray_containers(manifest).values():
        assert [e["name"] for e in container["env"]] == ["HF_HOME", "HF_HUB_OFFLINE", "HF_TOKEN"]


def test_a_ray_container_without_the_token_fails(production: dict[str, Any]) -> None:
    bad = copy.deepcopy(production)
    worker = _worker_container(bad, "pairwise")
    worker["env"] = [e for e in worker["env"] if e["name"] != "GENRM_API_TOKEN"]
    problems = validate_rayservice(bad)
    assert len(problems) == 1 and "workerGroupSpecs[1].template.spec.containers[0]: no GENRM_API_TOKEN" in problems[0]
    bad = copy.deepcopy(production)
    head = bad["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    next(e for e in head["env"] if e["name"] == "GENRM_API_TOKEN")["valueFrom"]["secretKeyRef"]["name"] = "other"
    assert validate_rayservice(bad) == [
        "the Ray containers set GENRM_API_TOKEN differently; every router replica must read one token"
    ]


def _resource_names(layout: str) -> set[str]:
    """What each layout creates in the namespace, by kind and name (KubeRay's head Service included)."""
    manifest = _manifest(layout)
    name = manifest["metadata"]["name"]
    names = {f"RayService/{name}", f"Service/{name}-head-svc"}
    names.add(f"Service/{manifest['spec']['serveService']['metadata']['name']}")
    for document in yaml.safe_load_all((ROOT / "k8s" / layout / "models.yaml").read_text()):
        names.add(f"{document['kind']}/{document['metadata']['name']}")
    for container in _ray_containers(manifest).values():
        for entry in container["env"]:
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref and entry["name"] != "HF_TOKEN":  # the hub account's token: one Secret for both layouts
                names.add(f"Secret/{ref['name']}")
        for claim in container.get("volumeMounts", []):
            names.add(f"VolumeMount/{claim['name']}")
    return names - {"VolumeMount/models"}


def test_the_layouts_name_their_own_resources() -> None:
    """Both layouts can live in one namespace: the single-node walk-through creates and names its own objects."""
    production, single_node = _resource_names("production"), _resource_names("single-node")
    assert production & single_node == set()
    assert single_node == {
        "RayService/genrm-small",
        "Service/genrm-small-head-svc",
        "Service/genrm-small-serve",
        "PersistentVolumeClaim/genrm-small-models",
        "Job/genrm-small-model-download",
        "Secret/genrm-small-api-token",
    }


def test_download_job_fetches_every_checkpoint_the_serve_config_names(production: dict[str, Any]) -> None:
    documents = list(yaml.safe_load_all((ROOT / "k8s" / "production" / "models.yaml").read_text()))
    assert [d["kind"] for d in documents] == ["PersistentVolumeClaim", "Job"]
    command = documents[1]["spec"]["template"]["spec"]["containers"][0]["command"]
    expected = ["nvidia/Qwen3-Nemotron-32B-GenRM-Principle", "nvidia/Qwen3-Nemotron-235B-A22B-GenRM-2603"]
    assert hub_checkpoints(_serve(production)) == expected
    assert command[-2:] == expected


# --- what must fail ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "right", "wrong"),
    [
        (("spec",), "serveConfigV2", "serveConfigv2"),
        (("spec", "rayClusterConfig", "workerGroupSpecs", 1), "rayStartParams", "rayStartParam"),
        (("spec", "rayClusterConfig", "workerGroupSpecs", 1, "template", "spec"), "nodeSelector", "nodeSelecter"),
    ],
)
def test_a_misspelled_field_fails_the_schema(
    production: dict[str, Any], crd_schema: dict[str, Any], where: tuple[Any, ...], right: str, wrong: str
) -> None:
    bad = copy.deepcopy(production)
    node = bad
    for key in where:
        node = node[key]
    node[wrong] = node.pop(right)
    problems = schema_problems(bad, crd_schema)
    assert any(wrong in p and "not allowed" in p for p in problems), problems


def test_a_misspelled_engine_argument_fails_llm_config(production: dict[str, Any]) -> None:
    serve = _serve(production)
    engine = serve["applications"][0]["args"]["pairwise"]["hosted"]["llm_config"]["engine_kwargs"]
    engine["gpu_memory_utilisation"] = engine.pop("gpu_memory_utilization")
    problems = validate_rayservice(_with_serve(production, serve))
    assert len(problems) == 1 and "gpu_memory_utilisation" in problems[0], problems


def test_a_worker_group_with_too_few_gpus_fails(production: dict[str, Any]) -> None:
    bad = copy.deepcopy(production)
    resources = _worker_container(bad, "pairwise")["resources"]
    for side in ("requests", "limits"):
        resources[side]["nvidia.com/gpu"] = "4"
    problems = validate_rayservice(bad)
    # two TP-8 replicas, neither fits a 4-GPU pod
    assert problems and all("pairwise judge replica" in p for p in problems), problems
    assert "8 GPUs, STRICT_PACK" in problems[0]


def test_a_placement_group_that_disagrees_with_tensor_parallelism_fails(production: dict[str, Any]) -> None:
    serve = _serve(production)
    engine = serve["applications"][0]["args"]["pairwise"]["hosted"]["llm_config"]["engine_kwargs"]
    engine["tensor_parallel_size"] = 4  # 8 bundles would strand 4 GPUs
    problems = validate_rayservice(_with_serve(production, serve))
    assert len(problems) == 1 and "tensor_parallel_size" in problems[0], problems


def test_a_judge_without_its_worker_group_does_not_fit_elsewhere(production: dict[str, Any]) -> None:
    """Pinning: the 8-GPU pairwise pod has room, but the principle judge's GPUs must come from its own group."""
    bad = copy.deepcopy(production)
    groups = bad["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    groups[:] = [g for g in groups if g["groupName"] != "principle"]
    _worker_container(bad, "pairwise")["resources"]["limits"]["nvidia.com/gpu"] = "9"
    _worker_container(bad, "pairwise")["resources"]["requests"]["nvidia.com/gpu"] = "9"
    problems = validate_rayservice(bad)
    assert problems and all("principle judge replica" in p for p in problems), problems


def test_autoscaling_maxima_must_fit_too(single_node: dict[str, Any]) -> None:
    serve = _serve(single_node)
    deployment = serve["applications"][0]["args"]["principle"]["hosted"]["llm_config"]["deployment_config"]
    assert deployment["autoscaling_config"]["max_replicas"] == 4  # 4 + the pairwise judge's 4 = the node's 8
    deployment["autoscaling_config"]["max_replicas"] = 5
    problems = validate_rayservice(_with_serve(single_node, serve))
    assert len(problems) == 1 and problems[0].startswith("at the autoscaling maxima, the principle judge replica 5")


def test_router_replicas_need_cpus_outside_the_head(production: dict[str, Any]) -> None:
    serve = _serve(production)
    # more CPUs than any worker pod has left beside its judge (the head runs no replicas)
    serve["applications"][0]["args"]["router"]["deployment"]["ray_actor_options"]["num_cpus"] = 93
    problems = validate_rayservice(_with_serve(production, serve))
    assert problems and "router replica 1" in problems[0], problems


@pytest.mark.parametrize(
    ("name", "message"),
    [("Genrm", "DNS-1035"), ("genrm_ensemble", "DNS-1035"), ("9genrm", "DNS-1035"), ("g" * 48, "at most 47")],
)
def test_names_must_suit_kuberay(production: dict[str, Any], name: str, message: str) -> None:
    bad = copy.deepcopy(production)
    bad["metadata"]["name"] = name
    _group(bad, "principle")["groupName"] = name
    problems = validate_rayservice(bad)
    where = [p.split(":")[0] for p in problems]
    assert where == ["metadata.name", "spec.rayClusterConfig.workerGroupSpecs[0].groupName"]
    assert all(message in p for p in problems)


def test_gpus_on_the_head_or_unequal_gpu_requests_fail(production: dict[str, Any]) -> None:
    bad = copy.deepcopy(production)
    head = bad["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    head["resources"]["limits"]["nvidia.com/gpu"] = "1"
    _worker_container(bad, "principle")["resources"]["requests"]["nvidia.com/gpu"] = "2"
    problems = validate_rayservice(bad)
    assert any("the head must not take GPUs" in p for p in problems), problems
    assert any("request 2 needs an equal limit" in p for p in problems), problems


def test_layout_parameters_are_checked() -> None:
    base = yaml.safe_load(LAYOUTS[0].read_text())
    for change, message in [
        ({"nmae": "x"}, "nmae"),
        ({"name": "GenRM"}, "DNS-1035"),
        ({"upgrade_strategy": "Rolling"}, "upgrade_strategy"),
        ({"worker_groups": [{**base["worker_groups"][0], "min_replicas": 2}]}, "min_replicas <= replicas"),
        ({"worker_groups": [base["worker_groups"][0], base["worker_groups"][0]]}, "unique"),
    ]:
        with pytest.raises(ValidationError, match=message):
            Layout.model_validate({**base, **change})


def test_cli_checks_the_committed_manifests(capsys: pytest.CaptureFixture[str]) -> None:
    os.chdir(ROOT)
    assert main(["render-k8s", "--check", *map(str, LAYOUTS)]) == 0
    files = [str(ROOT / "k8s" / layout / "rayservice.yaml") for layout in ("production", "single-node")]
    crd = ["--crd", str(CRD)] if CRD.is_file() else []
    assert main(["check-k8s", *files, *crd]) == 0
    assert capsys.readouterr().out.count(": OK") == 2


def _walkthrough_objects(layout: str) -> dict[str, str]:
    """The objects a layout's manifests create, that its walk-through must name: RayService, Services, Job, Secret."""
    service = _manifest(layout)
    name = service["metadata"]["name"]
    job = yaml.safe_load_all((ROOT / "k8s" / layout / "models.yaml").read_text())
    return {
        "rayservice": f"kubectl get rayservice {name} -w",
        "job": f"job/{next(d for d in job if d['kind'] == 'Job')['metadata']['name']}",
        "service": f"svc/{service['spec']['serveService']['metadata']['name']} 8000:8000",
        "dashboard": f"svc/{name}-head-svc 8265:8265",
        "token secret": f"secret generic {load_layout(ROOT / 'k8s' / 'layouts' / f'{layout}.yaml').api_token_secret} ",
        "manifests": f"-f k8s/{layout}/rayservice.yaml",
    }


@pytest.mark.parametrize(
    ("layout", "heading"),
    [("production", "## Deploy the production layout"), ("single-node", "## Deploy the single-node layout")],
)
def test_docs_walkthroughs_name_what_their_manifests_create(layout: str, heading: str) -> None:
    """docs/kubernetes.md walks through each layout with the files, object names and request body that layout really
    has, and names none of the other layout's objects."""
    import json
    import re

    from serve_app.protocols.genrm_api import BestOfNRequest

    text = (ROOT / "docs" / "kubernetes.md").read_text()
    start = text.index(heading)
    section = text[start : text.index("\n## ", start + len(heading))]
    for path in re.findall(r"(?:-f|render-k8s|check-k8s) (k8s/[\w./-]+)", section):
        assert (ROOT / path).is_file(), path
        if path.startswith(("k8s/layouts/", "k8s/production/", "k8s/single-node/")):  # not the shared Dockerfile
            assert f"/{layout}" in path, f"the {layout} walk-through names {path}"
    for what, words in _walkthrough_objects(layout).items():
        assert words in section, f"the {layout} walk-through does not name its {what}: {words!r}"
    other = "single-node" if layout == "production" else "production"
    for what, words in _walkthrough_objects(other).items():
        assert words not in section, f"the {layout} walk-through names the {other} layout's {what}: {words!r}"
    body = re.search(r"curl -s localhost:8000/v1/best_of_n .*?-d '(.*?)'\n", section)
    assert body is not None
    BestOfNRequest.model_validate(json.loads(body.group(1)))
