"""The example request bodies of the specification (xenodia-seedance2-api.txt), verbatim."""

from __future__ import annotations

from typing import Any, Final

TEXT_TO_VIDEO: Final[dict[str, Any]] = {
    "model": "seedance-2-fast",
    "prompt": "A cinematic beach at sunset, gentle waves, palm trees, and orange sky.",
    "resolution": "720p",
    "aspect_ratio": "16:9",
    "duration": 5,
    "generate_audio": False,
}
FIRST_AND_LAST_FRAME: Final[dict[str, Any]] = {
    "model": "seedance-2",
    "prompt": "Animate a product reveal from the first frame into the final packaging frame.",
    "first_frame_url": "https://example.com/first.png",
    "last_frame_url": "https://example.com/last.png",
    "resolution": "1080p",
    "aspect_ratio": "16:9",
    "duration": 8,
}
MULTIMODAL: Final[dict[str, Any]] = {
    "model": "seedance-2-fast",
    "prompt": "Use the references to create a fast, polished launch video.",
    "reference_image_urls": ["https://example.com/style.png"],
    "reference_video_urls": ["https://example.com/motion.mp4"],
    "reference_audio_urls": ["https://example.com/music.mp3"],
    "resolution": "720p",
    "aspect_ratio": "9:16",
    "duration": 10,
    "web_search": False,
    "nsfw_checker": False,
}
ALL: Final = (TEXT_TO_VIDEO, FIRST_AND_LAST_FRAME, MULTIMODAL)
