"""Reading the task event stream (``text/event-stream``): named events, their ids and data.

Parsed here line by line rather than by a helper library so that the caller sees every line,
keep-alive comments included, and can check its deadline between them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Event:
    event: str
    data: str
    id: str | None


@dataclass(slots=True)
class EventParser:
    """Feed it lines; it returns an event when a blank line ends one."""

    _event: str = ""
    _data: list[str] = field(default_factory=list)
    _id: str | None = None

    def feed(self, line: str) -> Event | None:
        if line == "":
            if not self._data:
                self._event = ""
                return None
            event = Event(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            return None  # a keep-alive comment
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        return None
