"""The recorded writer: a thread that inserts rows with increasing ids as fast as it can and
keeps every acknowledged id, with its time, and every error.

An id is never reused after an error: the insert may have committed without its
acknowledgement reaching us, and only acknowledged ids are checked for at the end.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import pymysql

from activities.users import APP_USER

WRITE_PAUSE = 0.01  # seconds between two inserts
RECONNECT_PAUSE = 0.2  # seconds between two reconnect attempts
DATABASE = "mysqlops_chaos"


def app_connection(
    host: str, port: int, password: str, read_timeout: float = 5
) -> pymysql.Connection[Any]:
    return pymysql.connect(
        host=host,
        port=port,
        user=APP_USER,
        password=password,
        autocommit=True,
        connect_timeout=2,
        read_timeout=read_timeout,
        write_timeout=5,
    )


class Writer(threading.Thread):
    """Inserts into `table` (created if missing) through connections `connect` makes,
    reconnecting after every error, until `stopping` is set."""

    def __init__(self, connect: Callable[[], pymysql.Connection[Any]], table: str) -> None:
        super().__init__(name="chaos-writer", daemon=True)
        self.connect, self.table = connect, table
        self.stopping = threading.Event()
        self.ready = threading.Event()  # the table exists and one row is acknowledged
        self.lock = threading.Lock()
        self.acked: list[int] = []
        self.acked_at: list[float] = []  # monotonic time of each acknowledgement, ascending
        self.errors: list[tuple[float, str]] = []  # (monotonic time, message)

    def run(self) -> None:
        next_id = 1
        conn: pymysql.Connection[Any] | None = None
        prepared = False
        while not self.stopping.is_set():
            try:
                if conn is None:
                    conn = self.connect()
                with conn.cursor() as cursor:
                    if not prepared:
                        database = self.table.split(".")[0]
                        cursor.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
                        cursor.execute(
                            f"CREATE TABLE IF NOT EXISTS {self.table} "
                            "(id BIGINT PRIMARY KEY, at DOUBLE)"
                        )
                        prepared = True
                    row_id, next_id = next_id, next_id + 1
                    cursor.execute(
                        f"INSERT INTO {self.table} (id, at) VALUES (%s, %s)", (row_id, time.time())
                    )
                with self.lock:
                    self.acked.append(row_id)
                    self.acked_at.append(time.monotonic())
                self.ready.set()
                self.stopping.wait(WRITE_PAUSE)
            except (pymysql.err.MySQLError, OSError) as exc:
                with self.lock:
                    self.errors.append((time.monotonic(), f"{type(exc).__name__}: {exc}"))
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
                    conn = None
                self.stopping.wait(RECONNECT_PAUSE)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def stop(self, timeout: float = 30) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout)

    def acked_ids(self) -> set[int]:
        with self.lock:
            return set(self.acked)

    def last_errors(self, count: int = 3) -> list[str]:
        with self.lock:
            return [message for _, message in self.errors[-count:]]

    def errors_between(self, start: float, end: float) -> int:
        with self.lock:
            return sum(1 for at, _ in self.errors if start <= at <= end)

    def longest_stall(self, start: float, end: float) -> float:
        """Longest time without an acknowledgement within [start, end], counting from the last
        acknowledgement before `start` and up to `end` if none came after the last one."""
        with self.lock:
            times = list(self.acked_at)
        first = bisect.bisect_left(times, start)
        last = bisect.bisect_right(times, end)
        window = times[max(first - 1, 0) : last]
        if not window:
            return end - start
        points = [*window, end]
        if window[0] > start:
            points.insert(0, start)
        return max(b - a for a, b in itertools.pairwise(points))
