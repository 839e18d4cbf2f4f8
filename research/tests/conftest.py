"""The research tests run under the default suite's settings (offline, isolated caches, seeded) and reuse its helpers
(`tests.testing_utils`, the tiny configs), so the repository root goes on the path."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.conftest import _isolated_caches  # noqa: E402,F401
