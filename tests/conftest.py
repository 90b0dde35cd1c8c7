import sys
from pathlib import Path

# tests/schema.py and tests/integration/harness.py are plain modules shared by the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "unit"))
