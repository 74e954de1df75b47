"""Session-wide fixtures live in tests/fixtures/*; each area owns its own module."""

pytest_plugins = [
    "tests.fixtures.bundle",
    "tests.fixtures.aws",
    "tests.fixtures.scoring",
    "tests.fixtures.ghl",
    "tests.fixtures.custom_leads",
    "tests.fixtures.iam",
]
