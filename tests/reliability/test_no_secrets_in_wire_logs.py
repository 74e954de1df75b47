"""botocore's DEBUG wire log prints request parameters and response bodies: a secret's value,
a KMS plaintext. A function whose root logger is at DEBUG (Lambda's advanced logging controls
set it from the console) must still not write them."""

from __future__ import annotations

import logging

import boto3
import pytest

from tests.fixtures.aws import REGION

SECRET_VALUE = "pit-0123456789abcdef-secret"


def test_secret_values_and_kms_plaintexts_stay_out_of_debug_logs(
    aws_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    from leadscore.adapters import client
    from leadscore.adapters.secrets import secret_string

    arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="wire-log/ghl-token", SecretString=SECRET_VALUE)["ARN"]
    kms = client("kms")
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    caplog.set_level(logging.DEBUG)  # the root logger, as Lambda's log level DEBUG sets it
    assert secret_string(arn, max_age_seconds=0) == SECRET_VALUE
    blob = kms.encrypt(KeyId=key, Plaintext=SECRET_VALUE.encode())["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == SECRET_VALUE.encode()
    assert caplog.records  # DEBUG logging was on
    assert SECRET_VALUE not in caplog.text
    import base64

    assert base64.b64encode(SECRET_VALUE.encode()).decode() not in caplog.text
