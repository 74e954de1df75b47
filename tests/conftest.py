"""Session-wide fixtures live in tests/fixtures/*; each area owns its own module."""

from hypothesis import settings

pytest_plugins = [
    "tests.fixtures.bundle",
    "tests.fixtures.aws",
    "tests.fixtures.scoring",
    "tests.fixtures.ghl",
    "tests.fixtures.custom_leads",
    "tests.fixtures.iam",
]

# Hypothesis' 200 ms per-example deadline turns a busy machine into failures of trivial tests
# (a 0.5 s pause on a shared CI host failed test_classes_are_monotonic_in_the_score): examples
# stay bounded by max_examples, not by the wall clock.
settings.register_profile("leadscore", deadline=None)
settings.load_profile("leadscore")
