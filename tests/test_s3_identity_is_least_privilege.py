"""The local stack's worker identity (the one lakeport.yaml uses) may read, write and delete only
in the lake bucket: other buckets, and creating buckets, are refused by S3 itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from lakeport.dev.seaweed import INGEST_ACCESS_KEY, INGEST_SECRET_KEY, s3_client
from lakeport.dev.stack import StackState
from lakeport.settings import load_settings

pytestmark = pytest.mark.stack


def test_worker_identity_is_scoped_to_the_lake_bucket(local_stack: StackState) -> None:
    admin = s3_client(local_stack.s3_endpoint, local_stack.access_key, local_stack.secret_key)
    worker = s3_client(local_stack.s3_endpoint, INGEST_ACCESS_KEY, INGEST_SECRET_KEY)
    admin.create_bucket(Bucket="not-the-lake")
    admin.put_object(Bucket="not-the-lake", Key="keep/me", Body=b"precious")

    worker.put_object(Bucket=local_stack.bucket, Key="bronze/scope-test/part-0.parquet", Body=b"x")
    assert worker.get_object(Bucket=local_stack.bucket, Key="bronze/scope-test/part-0.parquet")["Body"].read() == b"x"
    worker.delete_object(Bucket=local_stack.bucket, Key="bronze/scope-test/part-0.parquet")  # vacuum needs this
    for denied in (
        lambda: worker.put_object(Bucket="not-the-lake", Key="x", Body=b"x"),
        lambda: worker.delete_object(Bucket="not-the-lake", Key="keep/me"),
        lambda: worker.get_object(Bucket="not-the-lake", Key="keep/me"),
        lambda: worker.create_bucket(Bucket="worker-made"),
    ):
        with pytest.raises(ClientError, match="AccessDenied"):
            denied()
    assert admin.get_object(Bucket="not-the-lake", Key="keep/me")["Body"].read() == b"precious"
    default = load_settings(Path(__file__).resolve().parents[1] / "lakeport.yaml")
    assert default.lake.to_object_store()["AWS_ACCESS_KEY_ID"] == INGEST_ACCESS_KEY  # the demo runs as the worker
