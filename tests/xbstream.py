"""Writing small xbstreams in tests, in the format mariabackup streams."""

import struct
import zlib


def xbstream_of(files: dict[str, bytes], chunk: int = 64 * 1024) -> bytes:
    """Each file as payload chunks of at most `chunk` bytes, then its end-of-file chunk."""
    out = bytearray()
    for path, content in files.items():
        name = path.encode()
        for offset in range(0, max(len(content), 1), chunk):
            payload = content[offset : offset + chunk]
            out += b"XBSTCK01" + b"\0" + b"P" + struct.pack("<I", len(name)) + name
            out += struct.pack("<QQI", len(payload), offset, zlib.crc32(payload)) + payload
        out += b"XBSTCK01" + b"\0" + b"E" + struct.pack("<I", len(name)) + name
    return bytes(out)
