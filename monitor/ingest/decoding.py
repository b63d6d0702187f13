"""Undoing Content-Encoding (gzip, deflate, brotli) without ever holding more than a cap.

httpx's own decoders inflate a whole chunk at once, so a few hundred bytes of brotli can
become hundreds of megabytes before any size check runs; these layers stop at the cap.
"""

from __future__ import annotations

import zlib

import brotli

DECODE_ERRORS = (zlib.error, brotli.error)


class BodyTooLarge(Exception):
    """The decoded body went over the cap."""


class _Layer:
    """One Content-Encoding layer that refuses to produce more than `cap` bytes in all."""

    def __init__(self, cap: int) -> None:
        self._left = cap

    def decode(self, data: bytes) -> bytes:
        # Ask for one byte more than allowed: getting it proves the body too large without
        # inflating the rest of a bomb into memory.
        out = self._inflate(data, self._left + 1)
        self._left -= len(out)
        if self._left < 0:
            raise BodyTooLarge
        return out

    def _inflate(self, data: bytes, limit: int) -> bytes:
        raise NotImplementedError


class _ZlibLayer(_Layer):
    """gzip, or deflate with or without the zlib wrapper (servers send both)."""

    def __init__(self, cap: int, wbits: int | None) -> None:
        super().__init__(cap)
        self._head = b""
        self._inflater = None if wbits is None else zlib.decompressobj(wbits)

    def _inflate(self, data: bytes, limit: int) -> bytes:
        if self._inflater is None:
            # Two bytes tell a zlib header (RFC 1950) from raw deflate.
            self._head += data
            if len(self._head) < 2:
                return b""
            data, self._head = self._head, b""
            wrapped = data[0] & 0x0F == 8 and int.from_bytes(data[:2], "big") % 31 == 0
            self._inflater = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        return self._inflater.decompress(data, limit)


class _BrotliLayer(_Layer):
    def __init__(self, cap: int) -> None:
        super().__init__(cap)
        self._inflater = brotli.Decompressor()

    def _inflate(self, data: bytes, limit: int) -> bytes:
        return bytes(self._inflater.process(data, output_buffer_limit=limit))


def _layer(coding: str, cap: int) -> _Layer | None:
    if coding in ("gzip", "x-gzip"):
        return _ZlibLayer(cap, zlib.MAX_WBITS | 16)
    if coding == "deflate":
        return _ZlibLayer(cap, None)
    if coding == "br":
        return _BrotliLayer(cap)
    return None  # identity, or a coding we never asked for: pass it through as httpx does


class BodyDecoder:
    """Undoes a Content-Encoding chain and counts the decoded bytes against the cap."""

    def __init__(self, content_encoding: str, cap: int) -> None:
        codings = [coding.strip().lower() for coding in content_encoding.split(",")]
        # Codings are listed in the order applied, so they come off in reverse.
        layers = (_layer(coding, cap) for coding in reversed(codings))
        self._layers = [layer for layer in layers if layer is not None]
        self._left = cap

    def decode(self, data: bytes) -> bytes:
        for layer in self._layers:
            data = layer.decode(data)
        self._left -= len(data)
        if self._left < 0:
            raise BodyTooLarge
        return data
