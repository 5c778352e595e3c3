"""The Seedance 2.0 models the gateway offers, and what each accepts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

ModelId = Literal["seedance-2", "seedance-2-fast"]
Resolution = Literal["480p", "720p", "1080p"]
AspectRatio = Literal["1:1", "4:3", "3:4", "16:9", "9:16", "21:9", "adaptive"]

RESOLUTIONS: Final[tuple[Resolution, ...]] = ("480p", "720p", "1080p")
ASPECT_RATIOS: Final[tuple[AspectRatio, ...]] = (
    "1:1",
    "4:3",
    "3:4",
    "16:9",
    "9:16",
    "21:9",
    "adaptive",
)

DEFAULT_RESOLUTION: Final[Resolution] = "720p"
DEFAULT_ASPECT_RATIO: Final[AspectRatio] = "16:9"
DEFAULT_DURATION: Final = 5
MIN_DURATION: Final = 4
MAX_DURATION: Final = 15
MIN_PROMPT_CHARS: Final = 3
MAX_PROMPT_CHARS: Final = 20_000
MAX_REFERENCE_IMAGES: Final = 9
MAX_REFERENCE_VIDEOS: Final = 3
MAX_REFERENCE_AUDIOS: Final = 3


@dataclass(frozen=True, slots=True)
class Model:
    id: ModelId
    upstream_id: str
    resolutions: tuple[Resolution, ...]


MODELS: Final[dict[str, Model]] = {
    "seedance-2": Model("seedance-2", "bytedance/seedance-2", ("480p", "720p", "1080p")),
    "seedance-2-fast": Model("seedance-2-fast", "bytedance/seedance-2-fast", ("480p", "720p")),
}
