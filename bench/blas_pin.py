"""Importing this module pins BLAS threads as template.yaml gives them to the functions.

Our handler must run with the environment the deployed function gets, and BLAS reads this
variable once, when numpy loads: import this module before anything imports numpy
(`bench.harness` does, as its first import).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _template_blas_threads() -> str | None:
    """OPENBLAS_NUM_THREADS as template.yaml gives it to the functions (None if it does not)."""
    try:
        text = (REPO / "template.yaml").read_text()
    except OSError:
        return None
    found = re.search(r'^\s+OPENBLAS_NUM_THREADS:\s*"?(\d+)"?\s*$', text, re.MULTILINE)
    return found.group(1) if found else None


TEMPLATE_BLAS_THREADS = _template_blas_threads()
if TEMPLATE_BLAS_THREADS is not None:
    os.environ["OPENBLAS_NUM_THREADS"] = TEMPLATE_BLAS_THREADS
