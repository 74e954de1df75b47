"""Session-wide fixtures live in tests/fixtures/*; each area owns its own module."""

import os

import pytest
from hypothesis import settings
from threadpoolctl import threadpool_limits

# One BLAS thread, in this process and in every process a test starts (servers, writers,
# training subprocesses), as `make serve`, `make simulate` and the Lambda already run. The
# test models multiply matrices of a few hundred values, where OpenBLAS's second thread only
# spins: a tiny ensemble's fit took 6.3 s of CPU with two threads and 2.4 s with one (the
# L-BFGS-B fits of the network and the linear part), and trained models do not change.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
threadpool_limits(limits=1, user_api="blas")  # numpy may be loaded before this file

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

# A test that trains a model is slow by definition, also when a fixture does the training:
# `make test-fast` (-m "not slow") leaves out every test that uses one of these.
TRAINING_FIXTURES = frozenset({
    "trained_bundle",  # tests/fixtures/bundle.py: train.py on 1,500 leads
    "custom_bundle",  # tests/fixtures/custom_leads.py: a custom-schema bundle
    "tiny_model",  # tests/model/conftest.py: an ensemble fitted and exported
    "rare_feature_ensemble",  # tests/model/test_bounded_inputs.py
})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if TRAINING_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
