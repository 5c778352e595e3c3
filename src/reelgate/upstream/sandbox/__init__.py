"""A KIE-compatible sandbox: answers like KIE's Market API and renders real videos locally."""

from reelgate.upstream.sandbox.app import create_sandbox_app
from reelgate.upstream.sandbox.settings import SandboxSettings

__all__ = ["SandboxSettings", "create_sandbox_app"]
