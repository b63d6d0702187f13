"""The value syntaxes of feeds.toml: durations ("15m", "1h30m") and sizes ("10MB")."""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator, ByteSize, TypeAdapter, ValidationError

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_BINARY_UNIT = re.compile(r"(?<=[\d\s])([kmgt])b?$", re.IGNORECASE)
_BYTE_SIZE = TypeAdapter(ByteSize)
# The longest duration any key takes: each Duration key states its bound (`le`), at most this.
# Every duration ends up in a timedelta or an APScheduler trigger, and both overflow long
# before a float does (1e300 seconds, "300000000d").
MAX_DURATION = 365 * 86400.0


def parse_duration(value: object) -> float:
    """Seconds from 90, "90s", "15m", "1h30m" or "1d" (bounds are the keys' own)."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as \"15m\", not a boolean")
    if isinstance(value, int | float):
        return _seconds(value)
    if not isinstance(value, str):
        raise ValueError("must be a duration such as \"15m\" or a number of seconds")
    text = value.strip().lower().replace(" ", "")
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{value!r} is not a duration (use e.g. \"90s\", \"15m\", \"1h30m\", \"1d\")")
    return _seconds(sum(float(n) * _UNITS[u] for n, u in parts))


def _seconds(seconds: float) -> float:
    # Too large for a float (TOML allows 10**400) is infinite: the key's own bound refuses it.
    if isinstance(seconds, int) and abs(seconds) > MAX_DURATION:
        return math.copysign(math.inf, seconds)
    if math.isnan(seconds):
        raise ValueError("must be a number of seconds, not nan")
    return float(seconds)


def describe_seconds(seconds: float) -> str:
    """A bound in words for messages: 60 -> "60 seconds", 86400 -> "1 day", 31536000 -> "365 days"."""
    for unit, size in (("day", 86400), ("hour", 3600)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds:g} second{'s' if seconds != 1 else ''}"


def parse_size(value: object) -> int:
    """Bytes from 1048576, "512KB", "10MB" or "1.5 GiB"; KB, MB and GB are binary (1KB = 1024 bytes)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        # pydantic reads "MB" as 10**6 bytes; this file has always meant 2**20, so the
        # binary name is given to it ("10MB" and "10M" become "10mib").
        spelled = _BINARY_UNIT.sub(lambda unit: f"{unit.group(1)}ib", value.strip())
        try:
            return int(_BYTE_SIZE.validate_python(spelled))
        except ValidationError:
            pass
    raise ValueError(f"{value!r} is not a size (use e.g. \"10MB\" or a number of bytes)")

Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]
