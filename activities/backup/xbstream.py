"""Reading the small files of interest out of an xbstream while it flows past, and writing
small xbstreams (the scripted runtime's backups, tests).

mariabackup writes the backup's Galera position (`xtrabackup_galera_info`) and binlog position
(`xtrabackup_binlog_info`) only into the stream. Rather than extract the stream again, the
backup activity passes every block through `XbstreamScanner.feed`, which follows the chunk
headers and keeps the payloads of the named files, skipping everything else without copying.

A chunk: magic `XBSTCK01`, flags (1 byte), type (1: `P` payload, `S` sparse payload, `E` end of
file), path length (4, little endian), path; then for `P`: payload length (8), offset (8),
CRC32 (4), payload; for `S` a sparse map count (4) before the length and the map (8 bytes per
entry) before the payload.
"""

import struct
import zlib

MAGIC = b"XBSTCK01"
_PATH_LENGTH = struct.Struct("<I")
_PAYLOAD = struct.Struct("<QQI")  # length, offset, checksum
_SPARSE = struct.Struct("<IQQI")  # map entries, length, offset, checksum


class XbstreamError(ValueError):
    """The stream is not an xbstream (or is damaged)."""


class XbstreamScanner:
    def __init__(self, wanted: set[str]) -> None:
        self.wanted = wanted
        self.files: dict[str, bytearray] = {}
        self.ended: set[str] = set()  # files whose end-of-file chunk went past
        self._header = bytearray()  # bytes of the chunk header being read
        self._skip = 0  # payload (and sparse map) bytes still to pass over
        self._keep: bytearray | None = None  # where the current payload goes, if wanted
        self._map = 0  # sparse map bytes at the start of what `_skip` counts

    def feed(self, block: bytes) -> None:
        view = memoryview(block)
        while view:
            if self._skip:
                taken = min(self._skip, len(view))
                if self._keep is not None:
                    skipped_map = min(self._map, taken)
                    self._map -= skipped_map
                    self._keep += view[skipped_map:taken]
                self._skip -= taken
                view = view[taken:]
                continue
            want = (self._header_size() or 14) - len(self._header)
            self._header += view[:want]
            view = view[want:]
            needed = self._header_size()
            if needed is not None and len(self._header) == needed:
                self._chunk()

    def _header_size(self) -> int | None:
        """The full header's length, once enough of it is known to tell."""
        if len(self._header) < 14:
            return None
        if self._header[:8] != MAGIC:
            raise XbstreamError("not an xbstream chunk (bad magic)")
        path_length: int = _PATH_LENGTH.unpack_from(self._header, 10)[0]
        kind = bytes(self._header[9:10])
        extra = {b"E": 0, b"P": _PAYLOAD.size, b"S": _SPARSE.size}.get(kind)
        if extra is None:
            raise XbstreamError(f"unknown xbstream chunk type {kind!r}")
        return 14 + path_length + extra

    def _chunk(self) -> None:
        header = bytes(self._header)
        self._header.clear()
        kind = header[9:10]
        path_length = _PATH_LENGTH.unpack_from(header, 10)[0]
        path = header[14 : 14 + path_length].decode(errors="replace")
        if kind == b"E":
            self.ended.add(path)
            return
        if kind == b"P":
            length = _PAYLOAD.unpack_from(header, 14 + path_length)[0]
            self._map = 0
        else:
            entries, length, _, _ = _SPARSE.unpack_from(header, 14 + path_length)
            self._map = entries * 8
        self._skip = self._map + length
        self._keep = self.files.setdefault(path, bytearray()) if path in self.wanted else None

    def text(self, path: str) -> str | None:
        """A wanted file's content, once its end went past."""
        if path not in self.ended or path not in self.files:
            return None
        return self.files[path].decode(errors="replace")


def xbstream_of(files: dict[str, bytes], chunk: int = 64 * 1024) -> bytes:
    """Each file as payload chunks of at most `chunk` bytes, then its end-of-file chunk."""
    out = bytearray()
    for path, content in files.items():
        name = path.encode()
        for offset in range(0, max(len(content), 1), chunk):
            payload = content[offset : offset + chunk]
            out += MAGIC + b"\0" + b"P" + _PATH_LENGTH.pack(len(name)) + name
            out += _PAYLOAD.pack(len(payload), offset, zlib.crc32(payload)) + payload
        out += MAGIC + b"\0" + b"E" + _PATH_LENGTH.pack(len(name)) + name
    return bytes(out)
