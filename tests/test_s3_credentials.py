"""S3 without credentials: one line saying how to provide them, never a raw instance-metadata 403 or a slow timeout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shipyard.adapters.remotes.s3 import _on_ec2
from tests.conftest import cli_env, make_bucket, shipyard


def no_aws(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in cli_env().items() if not k.startswith("AWS_")}, "HOME": extra.pop("HOME"), **extra}


def project(root: Path, remote: str) -> Path:
    (root / "data").mkdir(parents=True)
    (root / "data" / "a.csv").write_text("a\n")
    (root / "shipyard.yaml").write_text(f"version: 1\nremotes:\n  origin:\n{remote}default_remote: origin\n")
    return root


@pytest.mark.skipif(_on_ec2(), reason="on EC2 the instance role is a credential source")
def test_no_credentials_is_one_line_that_says_how_to_provide_them(tmp_path: Path) -> None:
    root = project(tmp_path / "proj", "    url: s3://some-bucket/team\n    region: us-east-1\n")
    env = no_aws(HOME=str(tmp_path))  # no ~/.aws either
    shipyard("data", "add", "data", env=env, cwd=root)
    for command in (("data", "push"), ("data", "pull")):
        done = shipyard(*command, env=env, cwd=root, check=False)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "no AWS credentials found" in done.stderr and "AWS_ACCESS_KEY_ID" in done.stderr
        assert "AWS_PROFILE" in done.stderr and "169.254" not in done.stderr


def test_a_profile_of_the_shared_credentials_file_is_used(tmp_path: Path, s3_endpoint: str) -> None:
    creds = tmp_path / "credentials"
    creds.write_text("[team]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    root = project(tmp_path / "proj", f"    url: s3://{make_bucket(s3_endpoint)}/p\n    endpoint_url: {s3_endpoint}\n"
                                      "    profile: team\n")
    env = no_aws(HOME=str(tmp_path), AWS_SHARED_CREDENTIALS_FILE=str(creds), AWS_DEFAULT_REGION="us-east-1")
    shipyard("data", "add", "data", env=env, cwd=root)
    pushed = json.loads(shipyard("data", "push", "--json", env=env, cwd=root).stdout)
    assert pushed["transferred"] == 2  # the folder's manifest and its file

    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "nowhere")
    done = shipyard("data", "push", env=env, cwd=root, check=False)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "AWS profile 'team' is named, but" in done.stderr

    creds.write_text("[other]\naws_access_key_id = x\naws_secret_access_key = y\n")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(creds)
    done = shipyard("data", "push", env=env, cwd=root, check=False)
    assert done.returncode == 2 and "AWS profile 'team' is not in" in done.stderr


def test_the_default_profile_is_used_without_naming_it(tmp_path: Path, s3_endpoint: str) -> None:
    """`aws configure` writes [default] in ~/.aws/credentials, which every AWS SDK reads unasked; Shipyard
    said "no AWS credentials found" unless AWS_PROFILE named it."""
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "credentials").write_text("[default]\naws_access_key_id = testing\n"
                                                   "aws_secret_access_key = testing\n")
    root = project(tmp_path / "proj", f"    url: s3://{make_bucket(s3_endpoint)}/p\n    endpoint_url: {s3_endpoint}\n")
    env = no_aws(HOME=str(tmp_path), AWS_DEFAULT_REGION="us-east-1")
    shipyard("data", "add", "data", env=env, cwd=root)
    assert json.loads(shipyard("data", "push", "--json", env=env, cwd=root).stdout)["transferred"] == 2
