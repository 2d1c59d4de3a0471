"""Daily run windows (``engine.run_window``): ``"22:00-06:00 Asia/Shanghai"``, parsed once.

In the bottom layer because the configuration validates them and the engine's pacing applies
them; it imports nothing of sidepath but core/.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from datetime import time as dtime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sidepath.core.errors import ConfigError

__all__ = ["RunWindow", "parse_run_window"]

_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})(?:\s+(\S+))?\s*$")


@dataclass(frozen=True)
class RunWindow:
    """A daily window in a time zone; ``end`` before ``start`` wraps past midnight."""

    start: dtime
    end: dtime
    zone: ZoneInfo
    text: str

    def is_open(self, epoch_s: float) -> bool:
        local = datetime.fromtimestamp(epoch_s, self.zone).time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


def parse_run_window(text: str, key: str = "engine.run_window") -> RunWindow:
    """``"22:00-06:00 Asia/Shanghai"`` (the zone defaults to UTC)."""
    m = _WINDOW.match(text)
    fix = 'use "HH:MM-HH:MM Zone", e.g. "22:00-06:00 Asia/Shanghai" (zone optional, default UTC)'
    if not m:
        raise ConfigError(key, text, fix)
    h1, m1, h2, m2 = (int(g) for g in m.groups()[:4])
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise ConfigError(key, text, f"hours 0..23 and minutes 0..59; {fix}")
    try:
        zone = ZoneInfo(m.group(5) or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(key, text, f"unknown time zone {m.group(5)!r}; use an IANA name such as "
                          "Asia/Shanghai or Europe/Berlin") from None
    start, end = dtime(h1, m1), dtime(0, 0) if h2 == 24 else dtime(h2, m2)
    if start == end and h2 != 24:         # 00:00-24:00 is the whole day
        raise ConfigError(key, text, "start and end are the same; leave engine.run_window empty to run all day")
    return RunWindow(start, end, zone, text.strip())
