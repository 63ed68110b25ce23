"""One YAML file, validated: ${ENV} substitution, env overrides, errors that name file and field,
secrets that never show."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import run_cli

from lakeport.settings import ConfigError, load_settings

GOOD = """
kafka:
  bootstrap_servers: "${BROKER}"
  group_id: lakeport
  properties: {security.protocol: SASL_SSL, sasl.mechanism: PLAIN, sasl.username: u, sasl.password: "${KAFKA_PW}"}
lake:
  uri: s3://lake
  storage_options: {AWS_SECRET_ACCESS_KEY: "${S3_SECRET:-fallback-secret}"}
tables:
  - name: orders
    topics: [shop.public.orders]
    format: debezium-json
    key: [id]
    partition_by: []
  - name: events
    topic_pattern: '^events\\..*'
    format: json
"""


def test_substitution_overrides_and_routing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "lakeport.yaml"
    path.write_text(GOOD)
    monkeypatch.setenv("LAKEPORT_LAKE__URI", "/tmp/elsewhere")
    monkeypatch.setenv("LAKEPORT_INGEST__FLUSH_ROWS", "1234")
    settings = load_settings(path, environ={"BROKER": "k:9092", "KAFKA_PW": "pw-123456"})
    assert settings.kafka.bootstrap_servers == "k:9092"
    assert settings.lake.uri == "/tmp/elsewhere" and settings.ingest.flush_rows == 1234
    assert settings.kafka.to_librdkafka()["sasl.password"] == "pw-123456"
    assert settings.lake.to_object_store()["AWS_SECRET_ACCESS_KEY"] == "fallback-secret"
    assert "pw-123456" not in repr(settings) and "fallback-secret" not in repr(settings)
    assert settings.route("events.order").name == "events"  # type: ignore[union-attr]
    assert settings.route("shop.public.orders").name == "orders"  # type: ignore[union-attr]
    assert settings.route("other") is None


@pytest.mark.parametrize(
    ("yaml_text", "field"),
    [
        ("tables:\n  - name: Bad-Name\n    topics: [a]\n", "tables.0.name"),
        ("tables:\n  - name: t\n    topics: [a]\n    format: avro\n", "tables.0.format"),
        ("tables:\n  - name: t\n", "tables.0"),
        ("kafka: {bootstrap_servers: x, nope: 1}\n", "kafka.nope"),
        ("ingest: {flush_rows: -5}\n", "ingest.flush_rows"),
        ("tables:\n  - {name: t, topics: [a]}\n  - {name: t, topics: [b]}\n", "table names must be unique"),
    ],
)
def test_bad_config_names_file_and_field(tmp_path: Path, yaml_text: str, field: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert str(path) in str(err.value) and field in str(err.value)


def test_missing_env_var_and_bad_yaml_fail_fast(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("kafka: {bootstrap_servers: '${NOT_SET_ANYWHERE}'}\n")
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE"):
        load_settings(path, environ={})
    path.write_text("kafka: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(path, environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.yaml", environ={})


def test_cli_exits_2_without_leaking_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("kafka:\n  properties: {sasl.password: 'TOPSECRET-42'}\n  bogus: 1\n")
    proc = run_cli(["status", "--config", str(path)], check=False)
    assert proc.returncode == 2
    assert "kafka.bogus" in proc.stderr and str(path) in proc.stderr
    assert "TOPSECRET-42" not in proc.stdout + proc.stderr
