"""Shared by the vignettes: the size of the run (small in CI, full on request) and figure style."""

import os

#: "small" (CI: fewer replicates and shorter limits) or "full"; set HIERMIO_VIGNETTE=full
SIZE = os.environ.get("HIERMIO_VIGNETTE", "small")
FULL = SIZE == "full"


def pick(small, full):
    """The small-run value, or the full-run one."""
    return full if FULL else small
