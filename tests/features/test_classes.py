"""Lead classes: thresholds, boundaries, prioritisation, validation of a bundle's thresholds."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from leadscore.classes import (
    CLASSES,
    DEFAULT_CLASS_THRESHOLDS,
    classify,
    should_prioritize,
    validate_thresholds,
)
from leadscore.errors import InvalidInput


def test_defaults_are_design_md() -> None:
    assert dict(DEFAULT_CLASS_THRESHOLDS) == {"hot": 0.80, "warm": 0.60, "lukewarm": 0.40}
    assert CLASSES == ("hot", "warm", "lukewarm", "cold")


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (1.0, "hot"),
        (0.80, "hot"),
        (0.7999, "warm"),
        (0.60, "warm"),
        (0.5999, "lukewarm"),
        (0.40, "lukewarm"),
        (0.3999, "cold"),
        (0.0, "cold"),
    ],
)
def test_default_boundaries_are_inclusive(score: float, expected: str) -> None:
    assert classify(score) == expected


def test_custom_thresholds() -> None:
    t = {"hot": 0.9, "warm": 0.5, "lukewarm": 0.2}
    assert classify(0.85, t) == "warm"
    assert classify(0.9, t) == "hot"
    assert classify(0.3, t) == "lukewarm"
    assert classify(0.1, t) == "cold"


@pytest.mark.parametrize(("cls", "expected"), [("hot", True), ("warm", True),
                                                ("lukewarm", False), ("cold", False),
                                                ("HOT", False), ("", False)])  # fmt: skip
def test_should_prioritize(cls: str, expected: bool) -> None:
    assert should_prioritize(cls) is expected


@given(st.floats(0, 1), st.floats(0, 1))
def test_classes_are_monotonic_in_the_score(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert CLASSES.index(classify(hi)) <= CLASSES.index(classify(lo))


def test_validate_accepts_defaults_and_ints() -> None:
    assert validate_thresholds(DEFAULT_CLASS_THRESHOLDS) == dict(DEFAULT_CLASS_THRESHOLDS)
    assert validate_thresholds({"hot": 1, "warm": 0.5, "lukewarm": 0}) == {
        "hot": 1.0,
        "warm": 0.5,
        "lukewarm": 0.0,
    }


@pytest.mark.parametrize(
    ("obj", "paths"),
    [
        (None, ["class_thresholds"]),
        ([0.8, 0.6, 0.4], ["class_thresholds"]),
        ({"hot": 0.8, "warm": 0.6}, ["class_thresholds.lukewarm"]),
        ({"hot": 0.8, "warm": 0.6, "lukewarm": 0.4, "tepid": 0.2}, ["class_thresholds.tepid"]),
        ({"hot": "0.8", "warm": 0.6, "lukewarm": 0.4}, ["class_thresholds.hot"]),
        ({"hot": True, "warm": 0.6, "lukewarm": 0.4}, ["class_thresholds.hot"]),
        ({"hot": float("nan"), "warm": 0.6, "lukewarm": 0.4}, ["class_thresholds.hot"]),
        ({"hot": 1.2, "warm": -0.1, "lukewarm": 0.4},
         ["class_thresholds.hot", "class_thresholds.warm"]),
        ({"hot": 0.6, "warm": 0.8, "lukewarm": 0.4}, ["class_thresholds"]),
        ({"hot": 0.8, "warm": 0.6, "lukewarm": 0.6}, ["class_thresholds"]),
    ],
)  # fmt: skip
def test_validate_rejects_with_paths(obj: Any, paths: list[str]) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_thresholds(obj)
    assert info.value.paths == paths
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "raw",
    [
        '{"hot": true, "tepid": 9}',  # a boolean, an unknown class, two missing
        '{"hot": 0.8, "warm": 0.8, "lukewarm": 0.4}',  # not strictly ordered
        '{"hot": 0.8, "warm": 0.6, "lukewarm": 0.4, "tepid": 0.1}',
        '{"hot": "0.8", "warm": 0.6, "lukewarm": 0.4}',
        '{"hot": 1.5, "warm": 0.6, "lukewarm": 0.4}',
        '[0.8, 0.6, 0.4]',
        "not json",
    ],
)
def test_the_environment_refuses_what_the_one_check_refuses(raw: str) -> None:
    from leadscore.settings import ScoreSettings, SettingsError

    with pytest.raises(SettingsError, match="CLASS_THRESHOLDS"):
        ScoreSettings.from_env({"CLASS_THRESHOLDS": raw})
    if raw != "not json":
        import json

        with pytest.raises(InvalidInput):
            validate_thresholds(json.loads(raw))


def test_the_environment_names_every_problem() -> None:
    from leadscore.settings import ScoreSettings, SettingsError

    with pytest.raises(SettingsError) as caught:
        ScoreSettings.from_env({"CLASS_THRESHOLDS": '{"hot": true, "tepid": 9}'})
    message = str(caught.value)
    for path in ("CLASS_THRESHOLDS.tepid", "CLASS_THRESHOLDS.hot", "CLASS_THRESHOLDS.warm",
                 "CLASS_THRESHOLDS.lukewarm"):
        assert path in message


def test_the_environment_accepts_valid_thresholds() -> None:
    from leadscore.settings import ScoreSettings

    raw = '{"hot": 0.9, "warm": 0.5, "lukewarm": 0.2}'
    parsed = ScoreSettings.from_env({"CLASS_THRESHOLDS": raw})
    assert parsed.class_thresholds == {"hot": 0.9, "warm": 0.5, "lukewarm": 0.2}
