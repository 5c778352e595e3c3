"""The client is a distribution of its own: the library imports httpx and nothing of the
gateway, nor the command line's typer and rich."""

from __future__ import annotations

import subprocess
import sys

# httpx itself loads rich for its own command line when rich is installed: what counts is what
# the client loads beyond httpx and the standard library.
CHECK = """
import sys
import httpx
before = {name.split(".")[0] for name in sys.modules}
import reelgate_client
from reelgate_client import webhooks
added = {name.split(".")[0] for name in sys.modules} - before
stdlib = sys.stdlib_module_names
print(sorted(m for m in added - {"reelgate_client"} if m not in stdlib and m[1:] not in stdlib))
"""


def test_the_library_imports_nothing_of_the_gateway_nor_of_the_command_line() -> None:
    ran = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60, check=True
    )
    assert ran.stdout.strip() == "[]", ran
