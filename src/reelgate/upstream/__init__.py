"""Upstream providers: where the video is actually made."""
