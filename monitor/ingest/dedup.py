"""The identity keys of an article: canonical URL, guid hash, content hash.

Pure functions. The store keys articles on (feed, guid hash) and also looks them up by
canonical URL and content hash, so the same story reached through a tracking link, or
re-posted under another URL, is recognised as a duplicate.
"""

from __future__ import annotations

import hashlib
from urllib.parse import SplitResult, quote, unquote_plus, urljoin, urlsplit, urlunsplit

# Query parameters that identify a campaign or a click, never the article itself.
# Compared lower-case; any parameter starting with "utm_" is dropped as well.
TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "msclkid",
        "mc_cid",
        "mc_eid",
        "yclid",
        "_ga",
        "igshid",
        "ref_src",
        "cmpid",
        "ocid",
        "at_medium",
        "at_campaign",
    }
)

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters a URL may hold as they are (RFC 3986), "%" included so existing escapes
# stay. Anything else (a space, Cyrillic written as an IRI) is percent-encoded as UTF-8,
# so one address written either way gets one key.
_PATH_SAFE = "/%:@!$&'()*+,;="
_QUERY_SAFE = _PATH_SAFE + "?"

# guid_hash keeps 128 bits of the digest: plenty for a key scoped to one feed,
# and half the index size of the full 256.
GUID_HASH_CHARS = 32


MAX_URL_LENGTH = 2000


def canonical_url(link: str, base: str | None = None) -> str | None:
    """Absolute, escaped http(s) URL without fragment, default port, tracking; else None."""
    try:
        absolute = urljoin(base, link.strip()) if base else link.strip()
        parts = urlsplit(absolute)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            return None
        netloc = _netloc(parts, scheme)
    except (ValueError, AttributeError, TypeError):
        # urlsplit rejects bad IPv6 literals and ports; garbage input must not stop a feed.
        return None
    if netloc is None:
        return None
    path = quote(parts.path, safe=_PATH_SAFE) or "/"
    query = quote(_strip_tracking(parts.query), safe=_QUERY_SAFE)
    url = urlunsplit((scheme, netloc, path, query, ""))
    # The URL is a unique key; PostgreSQL cannot index values of several KB, and no real
    # article address is that long. Such an entry is kept, de-duplicated by guid only.
    return url if len(url) <= MAX_URL_LENGTH else None


def _netloc(parts: SplitResult, scheme: str) -> str | None:
    """Lower-case host with userinfo kept and the scheme's default port dropped."""
    host = parts.hostname  # already lower-case, brackets of an IPv6 literal removed
    if not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    port = parts.port  # raises ValueError when out of range or not a number
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    userinfo, at, _ = parts.netloc.rpartition("@")
    return f"{userinfo}{at}{host}"


def _strip_tracking(query: str) -> str:
    """The query without tracking parameters, the rest kept verbatim and in order."""
    # Split by hand rather than parse and re-encode, so the kept parameters stay
    # byte-for-byte what the publisher wrote (no %20 / + rewriting).
    kept = []
    for pair in query.split("&"):
        if not pair:
            continue
        name = unquote_plus(pair.partition("=")[0]).strip().lower()
        if name.startswith("utm_") or name in TRACKING_PARAMS:
            continue
        kept.append(pair)
    return "&".join(kept)


def guid_hash(guid: str) -> str:
    """First 32 hex characters (128 bits) of the SHA-256 of the stripped guid."""
    return hashlib.sha256(guid.strip().encode("utf-8")).hexdigest()[:GUID_HASH_CHARS]


def content_hash(title: str, text: str) -> str:
    """Full SHA-256 hex of the case-folded, whitespace-collapsed title and text."""
    # Collapsing all whitespace (newlines too) makes re-wrapped copies of a text equal.
    normalised = f"{_squash(title)}\n{_squash(text)}"
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def entry_guid(
    entry_id: str | None, link: str | None, title: str | None, published: str | None
) -> str:
    """The entry's own id, else its canonical link, else a key from title and date."""
    # Never random: an entry without id must get the same guid on every poll, or it
    # would be stored again each time.
    if entry_id and entry_id.strip():
        return entry_id.strip()
    url = canonical_url(link) if link else None
    if url:
        return url
    key = f"title:{_squash(title or '')}"
    if published and published.strip():
        key += f"|{published.strip()}"
    return key


def _squash(value: str) -> str:
    """Case-folded, with every whitespace run made a single space."""
    return " ".join(value.casefold().split())
