"""The default training image is mapped for every region the SageMaker SDK lists, with the
SDK's own accounts (its image_uri_config/sklearn.json, copied into tools/)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fixtures.aws import load_template
from tools import sklearn_image_map

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "tools" / "sagemaker_image_uri_config"


def test_every_region_of_the_sdk_config_is_mapped_to_its_account() -> None:
    template = load_template()
    image = template["Resources"]["RetrainFunction"]["Properties"]["Environment"][
        "Variables"]["TRAINING_IMAGE_URI"]["Fn::If"][2]["Fn::Sub"][0]
    repository, _, tag = image.rpartition("/")[2].partition(":")
    version = tag.removesuffix("-cpu-py3")
    sdk = json.loads((CONFIG / "sklearn.json").read_text())["training"]["versions"][version]
    assert sdk["repository"] == repository and "cpu" in sdk["processors"]
    mapped = template["Mappings"]["SklearnImageRegistry"]
    assert mapped == {region: {"Account": account}
                      for region, account in sdk["registries"].items()}
    assert len(mapped) >= 37  # 22 before the map was generated


def test_the_generator_finds_a_stale_map(tmp_path: Path) -> None:
    assert sklearn_image_map.main(["--check"]) == 0
    stale = tmp_path / "template.yaml"
    text = (ROOT / "template.yaml").read_text()
    stale.write_text(text.replace('    il-central-1: {Account: "898809789911"}\n', ""))
    assert sklearn_image_map.main(["--check", "--template", str(stale)]) == 1
    assert sklearn_image_map.main(["--template", str(stale)]) == 0
    assert stale.read_text() == text


def test_the_copy_carries_its_license() -> None:
    assert "Apache License" in (CONFIG / "LICENSE").read_text()
    assert "sagemaker-core" in (CONFIG / "README.md").read_text()
