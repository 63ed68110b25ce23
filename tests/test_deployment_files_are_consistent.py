"""infra/ is checked without a Docker engine: every file parses, every image is pinned, every
`lakeport` command line parses against the real CLI, the production config is a valid
lakeport.yaml whose variables the deployments provide, and Debezium's topics are routed."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from lakeport.cli.app import app
from lakeport.settings import load_settings

INFRA = Path(__file__).resolve().parents[1] / "infra"
COMPOSE = INFRA / "compose" / "docker-compose.yml"
PROD = INFRA / "lakeport.production.yaml"
K8S = sorted((INFRA / "k8s").rglob("*.yaml"))


def _docs(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _images(node: Any) -> list[str]:
    found = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "image" and isinstance(v, str):
                found.append(v)
            elif k == "image" and isinstance(v, dict) and "repository" in v:  # helm values
                found.append(f"{v['repository']}:{v.get('tag', '')}")
            else:
                found += _images(v)
    elif isinstance(node, list):
        for v in node:
            found += _images(v)
    return found


def _pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag != "latest" and re.search(r"\d", tag) is not None


def test_every_file_parses_and_every_image_is_pinned() -> None:
    compose = _docs(COMPOSE)[0]
    images = _images(compose) + [i for path in K8S for doc in _docs(path) for i in _images(doc)]
    dockerfile = (INFRA / "Dockerfile").read_text()
    images += re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.M)
    kustomize = _docs(INFRA / "k8s" / "base" / "kustomization.yaml")[0]
    resolved = {i["name"]: f"{i['newName']}:{i['newTag']}" for i in kustomize["images"]}
    images = [resolved.get(i, i) for i in images]
    assert len(images) >= 10
    assert [i for i in images if not _pinned(i)] == []
    for path in (INFRA / "debezium").glob("*.json"):
        json.loads(path.read_text())
    for resource in kustomize["resources"]:
        assert (INFRA / "k8s" / "base" / resource).exists(), resource


def _lakeport_command_lines() -> list[list[str]]:
    compose = _docs(COMPOSE)[0]
    lines = []
    for service in compose["services"].values():
        if str(service.get("image", "")).startswith("lakeport:") and not service.get("entrypoint"):
            lines.append([str(a) for a in service["command"]])
    for path in K8S:
        for doc in _docs(path):
            for c in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                if c.get("image") == "lakeport":
                    lines.append([str(a) for a in c["args"]])
    cmd = re.search(r"^CMD\s+(\[.*\])", (INFRA / "Dockerfile").read_text(), flags=re.M)
    assert cmd is not None
    lines.append(json.loads(cmd.group(1)))
    return lines


def test_every_lakeport_command_line_parses_against_the_cli() -> None:
    root: Any = typer.main.get_command(app)
    lines = _lakeport_command_lines()
    assert len(lines) >= 3
    for args in lines:
        name, rest = args[0], args[1:]
        assert name in root.commands, f"lakeport {name}: no such command"
        root.commands[name].make_context(name, list(rest))  # raises on an unknown option or a bad value
    with pytest.raises(Exception, match="no-such-flag"):
        root.commands["ingest"].make_context("ingest", ["--no-such-flag"])  # the check has teeth


def _provided_by_compose() -> set[str]:
    compose = _docs(COMPOSE)[0]
    env = set(compose["x-lakeport"]["environment"])
    env |= {line.split("=", 1)[0] for line in (INFRA / "compose" / "env.example").read_text().splitlines()
            if line and not line.startswith("#")}  # fmt: skip
    return env


def _provided_by_k8s() -> set[str]:
    secret = next(d for d in _docs(INFRA / "k8s" / "base" / "credentials-secret.yaml") if d["kind"] == "Secret")
    deployment = _docs(INFRA / "k8s" / "base" / "ingest-deployment.yaml")[0]
    env = {e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    return set(secret["stringData"]) | env


def test_production_config_is_valid_and_its_variables_are_provided(monkeypatch: pytest.MonkeyPatch) -> None:
    required = set(re.findall(r"\$\{([A-Z0-9_]+)\}", PROD.read_text()))  # no default: must be set
    assert {"KAFKA_BOOTSTRAP_SERVERS", "S3_SECRET_ACCESS_KEY", "LAKEPORT_HASH_SALT"} <= required
    for name, provided in (("compose", _provided_by_compose()), ("kubernetes", _provided_by_k8s())):
        assert required - provided == set(), f"{name} does not set {sorted(required - provided)}"
    for var in required | set(re.findall(r"\$\{([A-Z0-9_]+):-", PROD.read_text())):
        monkeypatch.setenv(var, "x" if var != "KAFKA_BOOTSTRAP_SERVERS" else "kafka:9092")
    settings = load_settings(PROD)  # every key is a valid lakeport.yaml key (extra keys are refused)
    assert settings.orchestration.bronze_mode == "observe"
    keda = next(d for d in _docs(INFRA / "k8s" / "base" / "ingest-scaledobject.yaml") if d["kind"] == "ScaledObject")
    assert keda["spec"]["triggers"][0]["metadata"]["consumerGroup"] == settings.kafka.group_id
    customers = settings.table("customers")
    assert {r.column for r in customers.column_rules} == {"email", "phone"}  # PII never lands in clear


def test_debezium_connectors_publish_only_topics_the_config_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in set(re.findall(r"\$\{([A-Z0-9_]+)", PROD.read_text())):
        monkeypatch.setenv(var, "x")
    settings = load_settings(PROD)
    cdc = json.loads((INFRA / "debezium" / "shop-cdc.json").read_text())
    topics = [f"{cdc['topic.prefix']}.{t}" for t in cdc["table.include.list"].split(",")]
    outbox = json.loads((INFRA / "debezium" / "shop-outbox.json").read_text())
    route = outbox["transforms.outbox.route.topic.replacement"]
    topics += [route.replace("${routedByValue}", kind) for kind in ("order", "payment", "shipment", "customer")]
    unrouted = [t for t in topics if not any(table.matches(t) for table in settings.tables)]
    assert unrouted == []
    assert cdc["plugin.name"] == "pgoutput" and cdc["value.converter.schemas.enable"] == "true"


def test_the_s3_policy_is_least_privilege() -> None:
    policy = json.loads((INFRA / "s3-policy.json").read_text())
    actions = [a for s in policy["Statement"] for a in s["Action"]]
    assert "s3:*" not in actions and all(s["Effect"] == "Allow" for s in policy["Statement"])
    for statement in policy["Statement"]:
        if "s3:DeleteObject" in statement["Action"] or "s3:PutObject" in statement["Action"]:
            assert all(r.startswith("arn:aws:s3:::lake/") and r.endswith("/*") for r in statement["Resource"])


def test_the_image_builds_the_decode_fast_path() -> None:
    dockerfile = (INFRA / "Dockerfile").read_text()
    copied = {name for line in re.findall(r"^COPY\s+(.+)$", dockerfile, flags=re.M) for name in line.split()[:-1]}
    assert {"setup.py", "pyproject.toml", "ingestion"} <= copied  # setup.py declares the C extension
    assert "fast_decode.AVAILABLE" in dockerfile  # the build fails rather than shipping the slow path
