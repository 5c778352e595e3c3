"""reelgate: a self-hosted gateway for asynchronous Seedance 2.0 video generation."""

__version__ = "0.1.0"
