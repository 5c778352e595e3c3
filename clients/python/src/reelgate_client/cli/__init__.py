"""The `reel` command."""
