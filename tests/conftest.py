from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path

import pytest

from lts.space.ranges import SearchSpace

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def pytest_configure(config) -> None:
    """The suite's own host-lock directory (inherited by the CLI processes tests start): a test that
    measures must not queue behind an `lts search` someone else runs on this machine, nor hold theirs."""
    config._lts_lock_dir = tempfile.mkdtemp(prefix="lts-test-locks-")
    os.environ["LTS_LOCK_DIR"] = config._lts_lock_dir


def pytest_unconfigure(config) -> None:
    shutil.rmtree(getattr(config, "_lts_lock_dir", ""), ignore_errors=True)


@pytest.fixture
def shared_dir() -> Path:
    """../shared beside the checkout; tests that need it skip, with the reason, when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"reference material not found at {SHARED} (../shared beside the checkout)")
    return SHARED


def small_space(family: str, **over) -> SearchSpace:
    """A space of small models (fast to build for real) that still exercises every code path."""
    spec = {
        "family": family,
        "n_layer": {"min": 1, "max": 3},
        "d_model": [16, 32, 48],
        "d_embed": [8, 16, 32],
        "div_val": [1, 2, 4],
        "n_head": [1, 2, 4, 8],
        "d_inner": {"min": 8, "max": 64},
        "vocab_size": 300,
        "cutoffs": [50, 120],
        "tgt_len": 12,
    }
    if family == "transxl":
        spec["mem_len"] = 6
    spec.update(over)
    return SearchSpace.from_dict(spec)


@pytest.fixture
def one_torch_thread():
    """One torch thread, as the CLI uses: stable timings on a shared 2-core machine, bit-stable values."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def rng() -> random.Random:
    return random.Random(1234)
