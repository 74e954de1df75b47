"""Build-time check of the runtime layer (run with only the layer on sys.path: `-S`).

The layer's boto3/botocore must be the pinned ones, must support conditional writes
(PutObject IfMatch / IfNoneMatch, which the model registry's champion switch relies on) and
must still carry the service model of every service our code calls (the layer Makefile cuts
the others). Exit status 1 names what is missing.
"""

from __future__ import annotations

import sys


def main(services: list[str]) -> int:
    import boto3
    import botocore
    import botocore.session

    problems: list[str] = []
    if not boto3.__file__ or "site-packages" in boto3.__file__:
        problems.append(f"boto3 was imported from {boto3.__file__}, not from the layer")
    session = botocore.session.get_session()
    put = session.get_service_model("s3").operation_model("PutObject").input_shape.members
    for member in ("IfMatch", "IfNoneMatch"):
        if member not in put:
            problems.append(f"botocore {botocore.__version__}: PutObject has no {member}")
    for service in services:
        try:
            session.create_client(service, region_name="us-east-1",
                                  aws_access_key_id="x", aws_secret_access_key="x")  # noqa: S106 - a client is made, never used
        except Exception as exc:  # a service model cut too much
            problems.append(f"no client for {service}: {type(exc).__name__}: {exc}")
    for problem in problems:
        print(f"runtime layer: {problem}", file=sys.stderr)
    if not problems:
        print(f"runtime layer: boto3 {boto3.__version__}, botocore {botocore.__version__}, "
              f"{len(services)} service models, conditional PutObject supported")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
