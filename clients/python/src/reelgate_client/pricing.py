"""What a task will cost, from the catalogue, as the gateway reserves it at create:
the tier's per-second price (resolution x video input) times the duration."""

from __future__ import annotations

from reelgate_client.types import Model

DEFAULT_RESOLUTION = "720p"
DEFAULT_DURATION = 5


def price_micro_usdc(
    model: Model,
    resolution: str | None = None,
    duration: int | None = None,
    video_input: bool = False,
    channel_id: str | None = None,
) -> int:
    """The cost in micro-USDC of a task of ``model``; the defaults are the model's own. Without
    ``channel_id``, at the model's own prices (those of the channel the gateway tries first);
    with it, at that channel's.

    The catalogue's prices already carry the channel's margin. The gateway rounds once, after
    multiplying the raw price by the duration and the margin, so under a margin other than 1
    this can differ from the reservation by less than ``duration`` micro-USDC."""
    resolution = resolution or str(model.default("resolution") or DEFAULT_RESOLUTION)
    if duration is None:
        default = model.default("duration")
        duration = default if isinstance(default, int) else DEFAULT_DURATION
    if isinstance(duration, bool) or not isinstance(duration, int) or duration <= 0:
        raise ValueError(f"duration must be a positive whole number of seconds, not {duration!r}")
    tiers, whose = model.tiers, model.id
    if channel_id is not None:
        channel = next((c for c in model.available_channels if c.id == channel_id), None)
        if channel is None:
            listed = ", ".join(c.id for c in model.available_channels) or "none listed"
            raise ValueError(f"{model.id} has no channel {channel_id!r}; its channels: {listed}")
        tiers, whose = channel.tiers, f"{model.id} on {channel_id}"
    for tier in tiers:
        if tier.resolution == resolution and tier.video_input == bool(video_input):
            return tier.price_micro_usdc * duration
    offered = ", ".join(sorted({t.resolution for t in tiers})) or "none"
    raise ValueError(
        f"{whose} has no {resolution} tier{' with video input' if video_input else ''}; "
        f"its resolutions: {offered}"
    )


def usd(micro_usdc: int) -> str:
    """Micro-USDC as a USD amount for people, exact: ``825000`` → ``0.825``."""
    sign = "-" if micro_usdc < 0 else ""
    whole, frac = divmod(abs(micro_usdc), 1_000_000)
    text = f"{whole}.{frac:06d}".rstrip("0")
    if text.endswith("."):
        text += "00"
    elif len(text.split(".")[1]) == 1:
        text += "0"
    return sign + text
