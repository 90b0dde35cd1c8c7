import sys
from pathlib import Path

# tests/schema.py and tests/integration/harness.py are plain modules shared by the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "unit"))


import pytest  # noqa: E402

from gitpaas import forkserver  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _no_fork_server_outlives_the_tests(tmp_path_factory):
    """The real `gitpaas` commands the tests run start their homes' fork servers (gitpaas.forkserver);
    a home the test removes stops its own, and the ones left in pytest's kept folders are stopped here."""
    yield
    base = str(tmp_path_factory.getbasetemp())
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
        except OSError:
            continue
        if b"gitpaas.forkserver.server" in command and len(command) >= 2:
            home = command[-2].decode() if command[-1] == b"" else command[-1].decode()
            if home.startswith(base):
                forkserver.stop(Path(home))
