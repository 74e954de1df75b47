"""Run the real SAM transform (aws-sam-translator) on template.yaml, as CloudFormation will.

`sam validate --lint` only runs cfn-lint, which no longer expands
`AWS::Serverless-2016-10-31`; an invalid serverless document (an event's Auth the API cannot
honour, a bad policy template) passes it and fails at deploy. This runs the translator that the
deployment uses (the version pinned by the SAM CLI of `make tools`, and pinned the same in
requirements/dev.txt for the tests) on the template after `sam package`'s one change: every
local `CodeUri` / `ContentUri` / `DefinitionUri` becomes an S3 location.

    python tools/sam_transform.py [template.yaml] [--out FILE.json] [--expect-translator X.Y.Z]

Exit status 1 (with the translator's own messages) when the document is invalid.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"

# Where `sam package` would have put the artifacts (never read: the transform only copies it).
PACKAGE_BUCKET = "leadscore-package-check"

# Local-path properties that `sam package` uploads, per resource type.
_PACKAGED = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
    "AWS::Serverless::Api": "DefinitionUri",
    "AWS::Serverless::HttpApi": "DefinitionUri",
    "AWS::Serverless::StateMachine": "DefinitionUri",
}

# Values of the pseudo parameters the transform may need (it resolves few of them itself).
PSEUDO_PARAMETERS = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "lead-scoring",
    "AWS::URLSuffix": "amazonaws.com",
}


class InvalidTemplate(Exception):
    """The SAM transform refused the document; ``messages`` are the translator's own."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages


class CfnLoader(yaml.SafeLoader):  # type: ignore[misc]
    """SafeLoader that keeps CloudFormation short-form tags as their long-form dicts."""


def _construct_cfn_tag(loader: yaml.Loader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    key = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {key: value}


CfnLoader.add_multi_constructor("!", _construct_cfn_tag)


def load(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template as a dict, intrinsic functions in their long form."""
    with path.open(encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=CfnLoader)  # noqa: S506  # nosec B506 - a SafeLoader subclass
    if not isinstance(data, dict):
        raise InvalidTemplate([f"{path} is not a YAML mapping"])
    return data


def packaged(template: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with every local artifact path replaced by an S3 location, as `sam package` does."""
    out = copy.deepcopy(dict(template))
    for logical_id, resource in out.get("Resources", {}).items():
        prop = _PACKAGED.get(resource.get("Type", ""))
        props = resource.get("Properties") or {}
        if prop and isinstance(props.get(prop), str) and not props[prop].startswith("s3://"):
            props[prop] = f"s3://{PACKAGE_BUCKET}/{logical_id}.zip"
    return out


def translator_version() -> str:
    import samtranslator

    return str(samtranslator.__version__)


def transform(
    template: Mapping[str, Any], parameter_values: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The CloudFormation document the SAM transform makes of `template` (already packaged).

    Raises InvalidTemplate with the translator's messages when the document is invalid.
    """
    import boto3
    from samtranslator.model.exceptions import (
        InvalidDocumentException,
        InvalidEventException,
        InvalidResourceException,
        InvalidTemplateException,
    )
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    # The region only decides the partition and the pseudo parameters; no call is made.
    session = boto3.session.Session(region_name=PSEUDO_PARAMETERS["AWS::Region"])
    translator = Translator(managed_policy_map=None, sam_parser=Parser(), boto_session=session)
    params = {**PSEUDO_PARAMETERS, **dict(parameter_values or {})}
    try:
        result = translator.translate(copy.deepcopy(dict(template)), parameter_values=params)
    except InvalidDocumentException as exc:
        raise InvalidTemplate([str(cause.message) for cause in exc.causes]) from exc
    except (InvalidTemplateException, InvalidResourceException, InvalidEventException) as exc:
        raise InvalidTemplate([str(exc.message)]) from exc
    return dict(result)


def transformed(path: Path = TEMPLATE) -> dict[str, Any]:
    """load -> packaged -> transform, the way CloudFormation sees the deployed template."""
    return transform(packaged(load(path)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("template", nargs="?", type=Path, default=TEMPLATE)
    parser.add_argument("--out", type=Path, help="write the transformed document (JSON) here")
    parser.add_argument("--expect-translator", default="",
                        help="fail unless aws-sam-translator has exactly this version")
    args = parser.parse_args(argv)
    version = translator_version()
    if args.expect_translator and version != args.expect_translator:
        print(f"aws-sam-translator {version} here, but {args.expect_translator} expected: "
              "the tests and the deployment must run the same transform", file=sys.stderr)
        return 1
    try:
        document = transformed(args.template)
    except InvalidTemplate as exc:
        print(f"SAM transform (aws-sam-translator {version}) refused {args.template}:",
              file=sys.stderr)
        for message in exc.messages:
            print(f"  - {message}", file=sys.stderr)
        return 1
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(document, indent=1, sort_keys=True))
    kinds: dict[str, int] = {}
    for resource in document.get("Resources", {}).values():
        kinds[resource["Type"]] = kinds.get(resource["Type"], 0) + 1
    print(f"SAM transform (aws-sam-translator {version}) of {args.template.name}: OK, "
          f"{sum(kinds.values())} CloudFormation resources")
    return 0


if __name__ == "__main__":
    sys.exit(main())
