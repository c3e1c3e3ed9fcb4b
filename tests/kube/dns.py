"""The cluster DNS of the test cluster: a small authoritative server for ``cluster.local``.

A real cluster runs CoreDNS, and every pod's /etc/resolv.conf names it (``dnsPolicy:
ClusterFirst``). Most programs resolve names through libc, which reads the pod's hosts file
first (``tests/kube/kubelet.py``, 11.); a program that asks DNS itself finds only this server:
HAProxy's ``resolvers`` with ``parse-resolv-conf``, which resolve a server's name again as it
runs to follow a pod recreated with a new IP. The kubelet starts one ``DnsServer`` on the
first address of the pod CIDR (127.11.0.1:53, UDP and TCP, on an asyncio loop of its own
thread) and gives it the records of its hosts files (``Kubelet.dns_records``, one source for
both) whenever they change. What it answers, as CoreDNS's ``kubernetes`` plugin does:

- **Its zone, ``cluster.local``** (authoritative, AA): a name of the records gets its
  address(es) for type A (or ANY), TTL ``ttl`` (5 s, the plugin's default; kubeadm's Corefile
  sets 30), and NOERROR with no answer for any other type (AAAA: pods have no IPv6 address),
  so a resolver asking AAAA first falls back to A. A name that only has records below it
  (``svc.cluster.local``, ``<ns>.svc.cluster.local``) is NOERROR without an answer too. Any
  other name of the zone is NXDOMAIN. Negative answers carry no SOA, so nothing caches them.
- **Every other name** (``example.com``, the reverse zones, and ``<pod>.<sub>.<ns>.svc.``
  asked as it is): REFUSED. There is no recursion and no forwarding (CoreDNS forwards to the
  node's resolver, which knows no ``svc.`` either): pods in tests need only cluster names.
  A pod's libc still finds ``<pod>.<sub>.<ns>.svc`` and shorter forms, through its search
  list (``<ns>.svc.cluster.local svc.cluster.local cluster.local``, ``ndots:5``) as in a real
  cluster, and through its hosts file. A program that applies no search list (HAProxy's
  resolvers) must ask for the full ``....svc.cluster.local`` name, as in a real cluster.
- Queries: one question (else FORMERR), opcode QUERY (else NOTIMP), class IN or ANY (else
  REFUSED), compressed names understood. A query with EDNS (an OPT record) gets one back.
  Responses are never truncated (they are a few records long). Nothing here does DNSSEC,
  zone transfers, SRV records of Services, or Service names at all (see the kubelet's 11.).
"""

import asyncio
import collections
import contextlib
import errno
import socket
import struct
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Self, cast

ZONE = "cluster.local"
TTL = 5
TYPE_A, TYPE_AAAA, TYPE_OPT, TYPE_ANY = 1, 28, 41, 255
CLASS_IN, CLASS_ANY = 1, 255
NOERROR, FORMERR, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 3, 4, 5
QR, AA, RD = 0x8000, 0x0400, 0x0100
EDNS_PAYLOAD = 1232


class FormatError(Exception):
    """A query this server cannot read (answered FORMERR)."""


def read_name(message: bytes, offset: int) -> tuple[str, int]:
    """The name at ``offset`` (lower case, no final dot) and the offset after it; follows
    compression pointers (RFC 1035, 4.1.4)."""
    labels: list[str] = []
    after = None
    for _ in range(128):  # a loop of pointers is an error, not a hang
        if offset >= len(message):
            raise FormatError("a name runs past the end of the message")
        length = message[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(message):
                raise FormatError("a compression pointer runs past the end")
            after = offset + 2 if after is None else after
            offset = (length & 0x3F) << 8 | message[offset + 1]
            continue
        if length & 0xC0:
            raise FormatError("an unknown label type")
        if length == 0:
            return ".".join(labels), offset + 1 if after is None else after
        labels.append(message[offset + 1 : offset + 1 + length].decode("latin-1").lower())
        offset += 1 + length
    raise FormatError("too many labels or pointers")


def encode_name(name: str) -> bytes:
    labels = [label.encode("latin-1") for label in name.rstrip(".").split(".") if label]
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\0"


def query(name: str, qtype: int = TYPE_A, ident: int = 0x1234, edns: bool = False) -> bytes:
    """A DNS query for one name (recursion desired, as a stub resolver sends), for tests."""
    header = struct.pack("!6H", ident, RD, 1, 0, 0, int(edns))
    opt = b"\0" + struct.pack("!HHIH", TYPE_OPT, EDNS_PAYLOAD, 0, 0) if edns else b""
    return header + encode_name(name) + struct.pack("!HH", qtype, CLASS_IN) + opt


def parse_response(message: bytes) -> tuple[int, int, list[tuple[str, int, int, bytes]]]:
    """``(flags, rcode, records)`` of a response, every record as ``(name, type, ttl, rdata)``
    (answers, authority and additional alike), for tests."""
    _, flags, qdcount, *counts = struct.unpack("!6H", message[:12])
    offset = 12
    for _ in range(qdcount):
        offset = read_name(message, offset)[1] + 4
    records = []
    for _ in range(sum(counts)):
        name, offset = read_name(message, offset)
        rtype, _, ttl, size = struct.unpack("!HHIH", message[offset : offset + 10])
        offset += 10
        records.append((name, rtype, ttl, message[offset : offset + size]))
        offset += size
    return flags, flags & 0xF, records


class DnsServer:
    """The server (see the module's docstring): ``start()``, ``update(records)``, ``stop()``.
    ``port=0`` picks a free port (the same for UDP and TCP). ``queries`` keeps the last 1000
    questions answered, as ``(name, type, rcode)``."""

    def __init__(self, host: str, port: int = 53, *, ttl: int = TTL) -> None:
        self.host, self.port, self.ttl = host, port, ttl
        self.records: dict[str, tuple[str, ...]] = {}
        self.queries: collections.deque[tuple[str, int, int]] = collections.deque(maxlen=1000)
        self._thread = threading.Thread(target=self._run, name=f"dns-{host}", daemon=True)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._streams: dict[asyncio.Task[None], asyncio.StreamWriter] = {}  # TCP clients

    def update(self, records: Mapping[str, Iterable[str]]) -> None:
        """Serve these records from now on: ``{name: [IPv4 address, ...]}``."""
        self.records = {name.lower().rstrip("."): tuple(ips) for name, ips in records.items()}

    def start(self) -> Self:
        self._thread.start()
        if not self._ready.wait(10) or self._failure is not None:
            failure = self._failure
            taken = isinstance(failure, OSError) and failure.errno == errno.EADDRINUSE
            hint = " (is another test cluster with the same pod CIDR running?)" * taken
            raise RuntimeError(
                f"the cluster DNS cannot serve on {self.host}:{self.port}: {failure}{hint}"
            ) from failure
        return self

    def stop(self) -> None:
        """Close the ports and end the thread (again: nothing)."""
        loop, stopping, self._loop = self._loop, self._stopping, None
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop ended already
                loop.call_soon_threadsafe(stopping.set)
        if self._thread.ident is not None:
            self._thread.join(10)
        if self._thread.is_alive():
            raise RuntimeError("the cluster DNS thread did not stop")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- answers ---------------------------------------------------------------------------------

    def answer(self, message: bytes) -> bytes | None:
        """The response to one message (``None``: no answer, for a response or a runt)."""
        if len(message) < 12:
            return None
        ident, flags, qdcount, *_ = struct.unpack("!6H", message[:12])
        if flags & QR:
            return None
        reply_flags = QR | (flags & RD)
        if flags & 0x7800:  # an opcode other than QUERY
            return struct.pack("!6H", ident, reply_flags | (flags & 0x7800) | NOTIMP, 0, 0, 0, 0)
        try:
            if qdcount != 1:
                raise FormatError("not one question")
            name, end = read_name(message, 12)
            if end + 4 > len(message):
                raise FormatError("a question runs past the end")
            qtype, qclass = struct.unpack("!HH", message[end : end + 4])
            edns = self._has_opt(message, end + 4)
        except FormatError:
            return struct.pack("!6H", ident, reply_flags | FORMERR, 0, 0, 0, 0)
        rcode, answers = self._lookup(name, qtype, qclass)
        self.queries.append((name, qtype, rcode))
        authoritative = AA if rcode != REFUSED else 0
        records = b"".join(
            struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, self.ttl, 4) + socket.inet_aton(ip)
            for ip in answers
        )
        opt = b"\0" + struct.pack("!HHIH", TYPE_OPT, EDNS_PAYLOAD, 0, 0) if edns else b""
        header = struct.pack(
            "!6H", ident, reply_flags | authoritative | rcode, 1, len(answers), 0, int(edns)
        )
        return header + message[12 : end + 4] + records + opt

    def _lookup(self, name: str, qtype: int, qclass: int) -> tuple[int, tuple[str, ...]]:
        if qclass not in (CLASS_IN, CLASS_ANY) or not (name == ZONE or name.endswith("." + ZONE)):
            return REFUSED, ()
        records = self.records
        addresses = records.get(name)
        if addresses is None:
            below = name == ZONE or any(known.endswith("." + name) for known in records)
            return (NOERROR if below else NXDOMAIN), ()
        return NOERROR, addresses if qtype in (TYPE_A, TYPE_ANY) else ()

    @staticmethod
    def _has_opt(message: bytes, offset: int) -> bool:
        """Whether the records after the question include an OPT (EDNS) record."""
        counts = struct.unpack("!3H", message[6:12])
        for _ in range(sum(counts)):
            offset = read_name(message, offset)[1]
            if offset + 10 > len(message):
                raise FormatError("a record runs past the end")
            rtype, _, _, size = struct.unpack("!HHIH", message[offset : offset + 10])
            if rtype == TYPE_OPT:
                return True
            offset += 10 + size
        return False

    # --- the loop --------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        udp, _ = await loop.create_datagram_endpoint(
            lambda: _Datagrams(self), local_addr=(self.host, self.port)
        )
        try:
            self.port = udp.get_extra_info("sockname")[1]
            tcp = await asyncio.start_server(self._stream, self.host, self.port)
            async with tcp:
                self._loop, self._stopping = loop, asyncio.Event()
                self._ready.set()
                await self._stopping.wait()
                if self._streams:  # else the clients' handlers are cancelled, and complain
                    for stream in self._streams.values():
                        stream.close()
                    await asyncio.wait(list(self._streams), timeout=1)
        finally:
            udp.close()

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """DNS over TCP: messages with a two-byte length, as long as the client sends them."""
        task = cast("asyncio.Task[None]", asyncio.current_task())
        self._streams[task] = writer
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                reply = self.answer(await reader.readexactly(size))
                if reply is None:
                    break
                writer.write(len(reply).to_bytes(2, "big") + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._streams.pop(task, None)
            writer.close()


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        reply = self.server.answer(data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)
