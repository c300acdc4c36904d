"""The Helm chart (infra/helm/spane), checked without a cluster: rendered offline with
helm-python-sdk (Helm's Go SDK behind ctypes, no helm binary) for the defaults, every
ci/ values file and the README's example; linted; every manifest validated against the
Kubernetes 1.30 JSON schemas (kubernetes-validate, strict: unknown fields are errors)
and every custom resource against its CRD schema (KEDA, prometheus-operator: node +
@kubernetes-models); then what the chart promises, resource by resource."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from spane.bus.topology import Topology
from spane.cli.pools import parse_pools
from tests.infra.conftest import NodeValidator
from tests.infra.support import CHART, parse_spane_args, spane_has_command

KUBERNETES_VERSION = "1.30.0"
RELEASE = "spane"
NAMESPACE = "workflows"
CUSTOM_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
}
SCENARIOS: dict[str, Path | None] = {
    "chart-defaults": None,
    **{path.stem: path for path in sorted((CHART / "ci").glob("*.yaml"))},
    "example-production": CHART / "examples" / "values-production.yaml",
}
# The keys a KEDA rabbitmq trigger understands (keda.sh/docs/scalers/rabbitmq-queue):
# the CRD leaves trigger metadata free-form, so a misspelt key would pass its schema.
RABBITMQ_TRIGGER_KEYS = {
    "host", "hostFromEnv", "protocol", "mode", "value", "activationValue", "queueName",
    "vhostName", "useRegex", "excludeUnacknowledged", "pageSize", "operation", "timeout",
    "unsafeSsl",
}  # fmt: skip


def load_values(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    return dict(loaded or {})


def render(helm: ModuleType, values: dict[str, Any]) -> list[dict[str, Any]]:
    with helm.Chart.load(str(CHART)) as chart:
        rendered: dict[str, str] = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    documents: list[dict[str, Any]] = []
    for template, text in sorted(rendered.items()):
        if not template.endswith((".yaml", ".yml")):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                assert isinstance(document, dict), f"{template}: not a mapping"
                documents.append(document)
    return documents


def merged_values(helm: ModuleType, values: dict[str, Any]) -> dict[str, Any]:
    with helm.Chart.load(str(CHART)) as chart:
        merged: dict[str, Any] = chart.merge_values(values)
    return merged


def effective_pool(values: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """What the chart documents an entry means: poolDefaults, then the entry's own
    fields, autoscaling merged field by field."""
    pool = {**values["poolDefaults"], **entry}
    pool["autoscaling"] = {**values["poolDefaults"]["autoscaling"], **entry.get("autoscaling", {})}
    pool.setdefault("pool", entry["name"])
    pool.setdefault("type", pool["pool"])
    return pool


def by_kind(documents: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents if d["kind"] == kind}


def pod_specs(documents: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, deployment in by_kind(documents, "Deployment").items():
        yield name, deployment["spec"]["template"]


def flag_values(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == flag]


@pytest.fixture(scope="module", params=sorted(SCENARIOS), ids=sorted(SCENARIOS))
def scenario(request: pytest.FixtureRequest, helm: ModuleType) -> dict[str, Any]:
    values = load_values(SCENARIOS[request.param])
    return {
        "name": request.param,
        "values": values,
        "merged": merged_values(helm, values),
        "documents": render(helm, values),
    }


# ------------------------------------------------------------------- lint and schemas
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_chart_lints_clean(helm: ModuleType, name: str) -> None:
    report = helm.lint(
        str(CHART), load_values(SCENARIOS[name]), strict=True, kube_version=f"v{KUBERNETES_VERSION}"
    )
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # warnings and errors
    assert problems == []


def test_every_manifest_matches_the_kubernetes_schemas(
    scenario: dict[str, Any], kubernetes_validate: ModuleType
) -> None:
    checked = 0
    for document in scenario["documents"]:
        if (document["apiVersion"], document["kind"]) in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            kind, name = document["kind"], document["metadata"]["name"]
            path = "/".join(str(p) for p in exc.path)
            pytest.fail(f"{scenario['name']}: {kind}/{name} at {path}: {exc.message}")
        checked += 1
    assert checked >= 5


@pytest.mark.timeout(300)  # the first use may run npm ci
def test_custom_resources_match_their_crd_schemas(
    scenario: dict[str, Any], node_validator: NodeValidator
) -> None:
    custom = [d for d in scenario["documents"] if (d["apiVersion"], d["kind"]) in CUSTOM_KINDS]
    if not custom:
        merged = scenario["merged"]
        assert not merged["keda"]["enabled"]
        assert not merged["metrics"]["serviceMonitor"]["enabled"]
        return
    result = node_validator(custom)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok ") == len(custom)


@pytest.mark.timeout(300)
def test_the_crd_validator_rejects_a_broken_scaled_object(node_validator: NodeValidator) -> None:
    broken = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "broken"},
        "spec": {"scaleTargetRef": {}, "minReplicaCount": "zero", "triggers": [{}]},
    }
    result = node_validator([broken])
    assert result.returncode == 1
    assert "minReplicaCount" in result.stdout
    assert "scaleTargetRef" in result.stdout


def test_values_schema_rejects_mistakes(helm: ModuleType) -> None:
    mistakes: list[dict[str, Any]] = [
        {"pools": [{"name": "function"}]},  # a function pool without imports
        {"pools": [{"name": "fn", "pool": "function", "imports": []}]},
        {"pools": [{"name": "scoring", "type": "function"}]},  # function tasks need imports
        {"pools": [{"name": "http", "pool": "Http"}]},  # the CLI would refuse the pool
        {"pools": [{"name": "http", "type": "a:b"}]},
        {"pools": [{"name": "Bad_Name", "pool": "http"}]},
        {"pools": [{"name": "http", "concurrency": 0}]},
        {"pools": [{"name": "http", "autoscaling": {"minReplicas": -1}}]},
        {"pools": [{"name": "http", "replica": 2}]},  # typo
        {"orchestator": {"replicas": 3}},  # typo
        {"servers": {"amqpUrl": "http://rabbitmq:5672"}},
        {"config": {"namespace": "Has.Dots"}},
    ]
    with helm.Chart.load(str(CHART)) as chart:
        for values in mistakes:
            with pytest.raises(helm.HelmValuesError):
                chart.render(values, name=RELEASE, namespace=NAMESPACE)


# ------------------------------------------------------------------- pools
def test_one_worker_deployment_and_autoscaler_per_pool(scenario: dict[str, Any]) -> None:
    merged, documents = scenario["merged"], scenario["documents"]
    deployments = by_kind(documents, "Deployment")
    scaled = by_kind(documents, "ScaledObject")
    hpas = by_kind(documents, "HorizontalPodAutoscaler")
    keda = merged["keda"]["enabled"]
    namespace = merged["config"]["namespace"]
    workers = {n for n, d in deployments.items() if n.startswith(f"{RELEASE}-worker-")}
    assert workers == {f"{RELEASE}-worker-{entry['name']}" for entry in merged["pools"]}
    expected_scaled, expected_hpa = set(), set()

    for entry in merged["pools"]:
        pool = effective_pool(merged, entry)
        name = f"{RELEASE}-worker-{pool['name']}"
        deployment = deployments[name]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        args = container["args"]
        # The real CLI accepts the command line, and it serves this pool.
        command, params = parse_spane_args(args)
        assert command == "worker"
        [served] = parse_pools(params["pool"])
        assert (served.task_type, served.pool) == (pool["type"], pool["pool"])
        assert list(params["imports"] or []) == pool["imports"]
        assert params["concurrency"] == pool["concurrency"]
        assert params["grace"] == pool["grace"]
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace > pool["grace"]
        image = {**merged["image"], **pool.get("image", {})}
        expected_image = (
            f"{image['repository']}@{image['digest']}"
            if image.get("digest")
            else f"{image['repository']}:{image.get('tag') or '0.1.0'}"
        )
        assert container["image"] == expected_image
        assert container["resources"] == pool["resources"]

        autoscaling = pool["autoscaling"]
        if not autoscaling["enabled"]:
            assert deployment["spec"]["replicas"] == pool["replicas"]
            continue
        assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"
        if keda:
            expected_scaled.add(name)
            spec = scaled[name]["spec"]
            assert spec["scaleTargetRef"] == {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": name,
            }
            assert spec["minReplicaCount"] == autoscaling["minReplicas"]
            assert spec["maxReplicaCount"] == autoscaling["maxReplicas"]
            (trigger,) = spec["triggers"]
            assert trigger["type"] == "rabbitmq"
            metadata = trigger["metadata"]
            assert set(metadata) <= RABBITMQ_TRIGGER_KEYS
            assert metadata["mode"] == "QueueLength"
            assert metadata["value"] == str(autoscaling["targetQueueLength"])
            # The queue KEDA watches is the one the workers consume.
            assert metadata["queueName"] == Topology(namespace=namespace).task_queue(pool["pool"])
            assert "host" not in metadata, "the AMQP URL comes from the TriggerAuthentication"
            auth = by_kind(documents, "TriggerAuthentication")[trigger["authenticationRef"]["name"]]
            (ref,) = auth["spec"]["secretTargetRef"]
            assert ref["parameter"] == "host"
            assert (ref["name"], ref["key"]) == env_secret_ref(container, "SPANE_AMQP_URL")
        else:
            expected_hpa.add(name)
            spec = hpas[name]["spec"]
            assert spec["scaleTargetRef"]["name"] == name
            assert spec["minReplicas"] == max(1, autoscaling["minReplicas"])
            assert spec["maxReplicas"] == autoscaling["maxReplicas"]
            (metric,) = spec["metrics"]
            assert metric["resource"]["name"] == "cpu"
            assert "cpu" in pool["resources"]["requests"], "CPU utilisation needs a request"
    assert set(scaled) == expected_scaled
    assert set(hpas) == expected_hpa


def test_keda_scenario_scales_to_zero_on_namespaced_queues(helm: ModuleType) -> None:
    values = load_values(CHART / "ci" / "keda-values.yaml")
    documents = render(helm, values)
    scaled = by_kind(documents, "ScaledObject")
    function = scaled[f"{RELEASE}-worker-function"]["spec"]
    assert function["minReplicaCount"] == 0  # not lost to a merge that drops zeros
    assert function["triggers"][0]["metadata"]["queueName"] == "shop-prod.tasks.function"
    assert {d["metadata"]["name"] for d in by_kind(documents, "Deployment").values()} >= {
        f"{RELEASE}-worker-image-resize"
    }


def env_secret_ref(container: dict[str, Any], variable: str) -> tuple[str, str]:
    (entry,) = [e for e in container["env"] if e["name"] == variable]
    ref = entry["valueFrom"]["secretKeyRef"]
    return ref["name"], ref["key"]


# ------------------------------------------------------------------- every pod
def test_every_process_reads_its_servers_from_the_secret(scenario: dict[str, Any]) -> None:
    merged, documents = scenario["merged"], scenario["documents"]
    secrets = by_kind(documents, "Secret")
    existing = merged["servers"]["existingSecret"]
    if existing:
        assert secrets == {}, "with existingSecret the chart makes no Secret"
    for name, template in pod_specs(documents):
        container = template["spec"]["containers"][0]
        for variable in ("SPANE_AMQP_URL", "SPANE_REDIS_URL", "SPANE_MONGODB_URL"):
            secret, key = env_secret_ref(container, variable)
            if existing:
                assert secret == existing
            else:
                assert key in secrets[secret]["stringData"], f"{name}: {variable}"
        plain = {e["name"]: e.get("value") for e in container["env"] if "value" in e}
        assert plain["SPANE_NAMESPACE"] == merged["config"]["namespace"]
        assert not any(str(v).startswith(("amqp", "redis", "mongodb")) for v in plain.values()), (
            "no server URL in plain text"
        )


def test_every_pod_is_locked_down(scenario: dict[str, Any]) -> None:
    for name, template in pod_specs(scenario["documents"]):
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] == 10001, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert "add" not in context["capabilities"], name
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], f"{name}: /tmp is not an emptyDir"


def test_probes_hit_the_health_endpoints_on_a_declared_port(scenario: dict[str, Any]) -> None:
    merged = scenario["merged"]
    for name, template in pod_specs(scenario["documents"]):
        container = template["spec"]["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        expected = (
            ("http", merged["api"]["port"])
            if name.endswith("-api")
            else ("metrics", merged["metrics"]["port"])
        )
        assert ports == dict([expected]), name
        for probe, path in (
            ("livenessProbe", "/livez"),
            ("readinessProbe", "/readyz"),
            ("startupProbe", "/livez"),
        ):
            assert container[probe]["httpGet"] == {"path": path, "port": expected[0]}, name


def test_orchestrators_spread_and_survive_disruptions(scenario: dict[str, Any]) -> None:
    merged, documents = scenario["merged"], scenario["documents"]
    name = f"{RELEASE}-orchestrator"
    deployment = by_kind(documents, "Deployment")[name]
    template = deployment["spec"]["template"]
    assert deployment["spec"]["replicas"] == merged["orchestrator"]["replicas"]
    _, params = parse_spane_args(template["spec"]["containers"][0]["args"])
    assert params["prefetch"] == merged["orchestrator"].get("prefetch")  # null: unset
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    (term,) = template["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert selects(term["podAffinityTerm"]["labelSelector"]["matchLabels"], template)
    pdb = by_kind(documents, "PodDisruptionBudget")[name]
    assert selects(pdb["spec"]["selector"]["matchLabels"], template)
    assert pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"]


def selects(selector: dict[str, str], template: dict[str, Any]) -> bool:
    labels = template["metadata"]["labels"]
    return all(labels.get(k) == v for k, v in selector.items())


def test_selectors_match_exactly_their_component(scenario: dict[str, Any]) -> None:
    documents = scenario["documents"]
    templates = dict(pod_specs(documents))
    for name, deployment in by_kind(documents, "Deployment").items():
        matching = [
            other
            for other, template in templates.items()
            if selects(deployment["spec"]["selector"]["matchLabels"], template)
        ]
        assert matching == [name], f"{name}'s selector also matches {matching}"
    for name, service in by_kind(documents, "Service").items():
        selected = [t for t in templates.values() if selects(service["spec"]["selector"], t)]
        assert selected, f"service {name} selects no pod"
        for port in service["spec"]["ports"]:
            for template in selected:
                declared = {p["name"] for p in template["spec"]["containers"][0]["ports"]}
                assert port["targetPort"] in declared, f"service {name}: {port['targetPort']}"


def test_api_service_ingress_and_command(scenario: dict[str, Any]) -> None:
    merged, documents = scenario["merged"], scenario["documents"]
    name = f"{RELEASE}-api"
    deployment = by_kind(documents, "Deployment")[name]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == merged["api"]["args"]
    if spane_has_command(args[0]):  # `spane api` is being added; parse it once it exists
        parse_spane_args(args)
    service = by_kind(documents, "Service")[name]
    assert service["spec"]["ports"][0]["port"] == merged["api"]["service"]["port"]
    ingresses = by_kind(documents, "Ingress")
    if merged["api"]["ingress"]["enabled"]:
        backend = ingresses[name]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
        assert backend == {"name": name, "port": {"name": "http"}}
    else:
        assert ingresses == {}


def test_service_monitor_scrapes_orchestrators_and_workers(scenario: dict[str, Any]) -> None:
    merged, documents = scenario["merged"], scenario["documents"]
    monitors = by_kind(documents, "ServiceMonitor")
    if not merged["metrics"]["serviceMonitor"]["enabled"]:
        assert monitors == {}
        return
    (monitor,) = monitors.values()
    services = [
        s
        for s in by_kind(documents, "Service").values()
        if all(
            s["metadata"]["labels"].get(k) == v
            for k, v in monitor["spec"]["selector"]["matchLabels"].items()
        )
    ]
    (service,) = services
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    scraped = {n for n, t in pod_specs(documents) if selects(service["spec"]["selector"], t)}
    expected = {n for n in by_kind(documents, "Deployment") if not n.endswith("-api")}
    assert scraped == expected


def test_network_policies_open_only_declared_ports(scenario: dict[str, Any]) -> None:
    merged, documents = scenario["merged"], scenario["documents"]
    policies = by_kind(documents, "NetworkPolicy")
    if not merged["networkPolicy"]["enabled"]:
        assert policies == {}
        return
    templates = dict(pod_specs(documents))
    covered: set[str] = set()
    for name, policy in policies.items():
        assert policy["spec"]["policyTypes"] == ["Ingress"], name
        selected = {
            n
            for n, t in templates.items()
            if selects(policy["spec"]["podSelector"]["matchLabels"], t)
        }
        assert selected, f"{name} selects no pod"
        covered |= selected
        for rule in policy["spec"]["ingress"]:
            for port in rule["ports"]:
                for pod in selected:
                    declared = {p["name"] for p in templates[pod]["spec"]["containers"][0]["ports"]}
                    assert port["port"] in declared, f"{name}: {port['port']} on {pod}"
    assert covered == set(templates), "every pod is behind a policy"
