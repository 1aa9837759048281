"""Encoding storage records: one msgspec encoder and one typed decoder per record
Struct, built once at import (the records' modules hold one Codec per sub-database)."""
from __future__ import annotations

import msgspec


class Codec:
    """One encoder and one typed decoder per record type, built once."""

    __slots__ = ("encode", "decode")

    def __init__(self, typ: type):
        self.encode = msgspec.msgpack.Encoder().encode
        self.decode = msgspec.msgpack.Decoder(typ).decode
