"""Staged datasets: copies between a task's scratch folder and the bucket (moto S3)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kedro_batch_runtime.staging import (
    Staged,
    StagingError,
    download,
    snapshot,
    upload,
    write_back,
)

from tests.batch_tasks import S3Endpoint, moto_s3

BUCKET = "kb-staging"
V1, V2 = "2026-01-01T00.00.00.000Z", "2026-02-01T00.00.00.000Z"


@pytest.fixture(scope="module")
def s3():
    with moto_s3(BUCKET) as endpoint, pytest.MonkeyPatch.context() as patch:
        for key, value in endpoint.env.items():
            patch.setenv(key, value)
        yield endpoint


def _put(s3: S3Endpoint, key: str, body: bytes = b"x") -> None:
    s3.client().put_object(Bucket=BUCKET, Key=key, Body=body)


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_a_folder_output_replaces_what_an_earlier_attempt_uploaded(s3, tmp_path):
    out = tmp_path / "table.parquet"
    (out / "sub").mkdir(parents=True)
    (out / "part-0.parquet").write_bytes(b"aa")
    (out / "sub" / "part-1.parquet").write_bytes(b"b")
    staged = Staged("table", str(out), f"s3://{BUCKET}/runs/r1/table.parquet")
    assert upload(staged).files == 2
    _put(s3, "runs/r1/table.parquet2/neighbour")  # a sibling sharing the prefix's text
    (out / "sub" / "part-1.parquet").unlink()
    (out / "_SUCCESS").write_bytes(b"")
    copied = upload(staged)
    assert (copied.files, copied.bytes) == (2, 2)
    assert s3.keys(BUCKET, "runs/r1/") == [
        "runs/r1/table.parquet/_SUCCESS",
        "runs/r1/table.parquet/part-0.parquet",
        "runs/r1/table.parquet2/neighbour",
    ]


def test_a_file_and_a_folder_come_back_as_they_were_written(s3, tmp_path):
    _put(s3, "data/raw.csv", b"a,b\n1,2\n")
    _put(s3, "data/tiles/x/1.png", b"1")
    _put(s3, "data/tiles/2.png", b"22")
    file = download(Staged("raw", str(tmp_path / "raw.csv"), f"s3://{BUCKET}/data/raw.csv"))
    assert (file.files, file.bytes) == (1, 8)
    assert (tmp_path / "raw.csv").read_bytes() == b"a,b\n1,2\n"
    tree = download(Staged("tiles", str(tmp_path / "tiles"), f"s3://{BUCKET}/data/tiles"))
    assert (tree.files, tree.source) == (2, f"s3://{BUCKET}/data/tiles")
    assert _files(tmp_path / "tiles") == ["2.png", "x/1.png"]


@pytest.mark.parametrize("folder", [False, True])
def test_a_versioned_input_fetches_only_its_latest_version(s3, tmp_path, folder):
    name = "f.parquet" if folder else "m.pkl"
    leaf = f"{name}/part-0" if folder else name
    for version in (V1, V2):
        _put(s3, f"v/{name}/{version}/{leaf}", version.encode())
    _put(s3, f"v/{name}/2026-03-01T00.00.00.000Z/other")  # not a version of this dataset
    staged = Staged(name, str(tmp_path / name), f"s3://{BUCKET}/v/{name}", latest_version=True)
    assert download(staged).source == f"s3://{BUCKET}/v/{name}/{V2}/{name}"
    assert _files(tmp_path / name) == [f"{V2}/{leaf}"]


def test_missing_data_is_named_with_its_bucket_location(s3, tmp_path):
    missing = Staged("raw", str(tmp_path / "raw.csv"), f"s3://{BUCKET}/nope/raw.csv")
    with pytest.raises(StagingError, match=rf"'raw' is not in the bucket: s3://{BUCKET}/nope"):
        download(missing)
    unversioned = Staged("m", str(tmp_path / "m"), f"s3://{BUCKET}/nope/m.pkl", latest_version=True)
    with pytest.raises(StagingError, match="'m' has no version in the bucket"):
        download(unversioned)


def test_a_save_that_wrote_nothing_uploads_nothing(s3, tmp_path):
    empty = Staged("parts", str(tmp_path / "none"), f"s3://{BUCKET}/runs/r2/parts")
    assert upload(empty).files == 0
    assert s3.keys(BUCKET, "runs/r2/") == []


def test_write_back_puts_only_what_the_task_changed_and_keeps_new_partitions(s3, tmp_path):
    for name in ("a.png", "b.png"):
        _put(s3, f"inbox/{name}", name.encode())
    staged = Staged("inbox", str(tmp_path / "inbox"), f"s3://{BUCKET}/inbox")
    download(staged)
    fetched = snapshot(staged.local)
    assert write_back(staged, fetched).files == 0  # nothing changed: nothing sent
    _put(s3, "inbox/c.png", b"arrived while the task ran")
    (tmp_path / "inbox" / "CHECKPOINT").write_text("b")  # what confirm() writes
    copied = write_back(staged, fetched)
    assert (copied.files, copied.bytes) == (1, 1)
    assert s3.keys(BUCKET, "inbox/") == [
        "inbox/CHECKPOINT",
        "inbox/a.png",
        "inbox/b.png",
        "inbox/c.png",
    ]
    assert s3.client().get_object(Bucket=BUCKET, Key="inbox/c.png")["Body"].read() == (
        b"arrived while the task ran"
    )


def test_an_incremental_dataset_without_partitions_yet_is_an_empty_folder(s3, tmp_path):
    inbox = Staged(
        "inbox", str(tmp_path / "inbox"), f"s3://{BUCKET}/empty/inbox", empty_when_missing=True
    )
    assert download(inbox).files == 0
    assert (tmp_path / "inbox").is_dir() and _files(tmp_path / "inbox") == []
