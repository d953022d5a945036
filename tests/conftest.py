"""What every test shares: generated datasets are cached in a directory of the session's own."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def session_dataset_cache(tmp_path_factory):
    """Never the user's ~/.cache/dlbench; one directory for the session, so tests (and the CLI
    subprocesses they start, which inherit the environment) still share generated data."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DLBENCH_CACHE", str(tmp_path_factory.mktemp("dlbench-cache")))
        yield
