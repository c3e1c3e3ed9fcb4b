"""The users mysqlops creates, and what the application user may do.

The application user may create databases and tables and use them, nothing administrative.
MariaDB has no database owner and no partial revokes, and DML rights on the `mysql` schema
are administrative (INSERT there allows CREATE USER). So instead of `ON *.*`, the user gets
database-level grants on LIKE patterns that together match every name except `mysql`.
"""

import string

APP_USER = "app"
MONITOR_USER = "mysqlops_monitor"
APP_SECRET = "app-password"
MONITOR_SECRET = "monitor-password"

APP_PRIVILEGES = (
    "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, CREATE TEMPORARY TABLES, "
    "LOCK TABLES, EXECUTE, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, EVENT, "
    "TRIGGER, REFERENCES"
)
MONITOR_PRIVILEGES = "PROCESS, REPLICA MONITOR"

_NAME_CHARS = string.ascii_letters + string.digits + "_$"
_PROTECTED = "mysql"


def _literal(chars: str) -> str:
    return chars.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%")


def database_patterns(protected: str = _PROTECTED) -> list[str]:
    """LIKE patterns matching every database name made of letters, digits, '_' and '$'
    except `protected`: each prefix of it exactly, each prefix followed by any other next
    character, and the whole name followed by anything."""
    patterns = [f"{_literal(c)}%" for c in _NAME_CHARS if c != protected[0]]
    for length in range(1, len(protected)):
        prefix = _literal(protected[:length])
        patterns.append(prefix)
        patterns += [f"{prefix}{_literal(c)}%" for c in _NAME_CHARS if c != protected[length]]
    patterns.append(f"{_literal(protected)}_%")
    return patterns


def user_statements(app_password: str, monitor_password: str, hostname: str) -> list[str]:
    """Idempotent SQL that creates both users, or resets them to the stored passwords."""
    statements = [
        "DROP USER IF EXISTS ''@'localhost'",
        f"DROP USER IF EXISTS ''@'{hostname}'",
    ]
    for user, password in ((APP_USER, app_password), (MONITOR_USER, monitor_password)):
        statements += [
            f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{password}'",
            f"ALTER USER '{user}'@'%' IDENTIFIED BY '{password}'",
        ]
    statements.append(f"GRANT {MONITOR_PRIVILEGES} ON *.* TO '{MONITOR_USER}'@'%'")
    statements += [
        f"GRANT {APP_PRIVILEGES} ON `{pattern}`.* TO '{APP_USER}'@'%'"
        for pattern in database_patterns()
    ]
    return statements
