"""Which MySQL server options a user may set in `spec.mysql.config`, which mysqlops owns, and
what values the server takes for them.

Options that place files, wire up Galera or define durability contracts are managed: changing
them would break the cluster or the guarantees of the platform. Everything else must be a known
server variable from the allow-list, so a typo is an error rather than a silently ignored line,
and its value must be one the server takes: a node restarted with `max_connections = lots`
does not start. The server clamps out-of-range numbers with only a warning; we refuse them
(asking for 0 connections is a mistake).
"""

import math
import re
from dataclasses import dataclass

from pydantic.config import JsonDict, JsonValue

MANAGED: frozenset[str] = frozenset(
    {
        "basedir",
        "bind_address",
        "binlog_format",
        "datadir",
        "default_storage_engine",
        "gtid_domain_id",  # with the four below: one GTID stream per cluster (backups)
        "innodb_autoinc_lock_mode",
        "innodb_buffer_pool_size",  # spec.mysql.innodbBufferPoolSize
        "innodb_flush_log_at_trx_commit",  # 1: acknowledged commits survive crashes
        "log_bin",
        "log_error",
        "log_slave_updates",
        "pid_file",
        "port",
        "server_id",
        "socket",
        "user",
        "wsrep_cluster_address",
        "wsrep_cluster_name",
        "wsrep_gtid_domain_id",
        "wsrep_gtid_mode",
        "wsrep_node_address",
        "wsrep_node_name",
        "wsrep_on",
        "wsrep_provider",
        "wsrep_provider_options",
        "wsrep_sst_auth",
        "wsrep_sst_method",
        "wsrep_sst_receive_address",
    }
)

_INTEGER = re.compile(r"([+-]?\d+)([KMGTPE]?)", re.IGNORECASE)
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?", re.IGNORECASE)
_SUFFIX_POWER = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}


@dataclass(frozen=True)
class Integer:
    """Any integer option takes a K/M/G/T/P/E suffix (powers of 1024), in either case."""

    low: int
    high: int

    def problem(self, value: object) -> str | None:
        allowed = f"{self.low}..{self.high}, suffixes K/M/G/T/P/E allowed"
        number = _integer(value)
        if number is None:
            return f"{value!r} is not an integer ({allowed})"
        if not self.low <= number <= self.high:
            return f"{value!r} is out of range ({allowed})"
        return None

    def cel(self, value: str) -> str:
        """The CRD's check of an int-or-string `value` (a CEL expression): the range of an
        integer, the form of a string (its range, with a suffix, is the watcher's check)."""
        bounds = [f"{value} >= {self.low}"]
        if self.high < _I64:  # an int beyond int64 is no integer on the API server
            bounds.append(f"{value} <= {self.high}")
        return (
            f"type({value}) == int ? {' && '.join(bounds)}"
            f" : {value}.trim().matches('^[+-]?[0-9]+[KMGTPEkmgtpe]?$')"
        )

    def requirement(self) -> str:
        return (
            f"an integer from {self.low} to {self.high}, or a string with a K, M, G, T, P or E "
            "suffix such as '64M'"
        )


@dataclass(frozen=True)
class Real:
    """A decimal number (no suffixes)."""

    low: float
    high: float

    def problem(self, value: object) -> str | None:
        allowed = f"{self.low:.15g}..{self.high:.15g}, e.g. 0.5"
        number = _real(value)
        if number is None:
            return f"{value!r} is not a number ({allowed})"
        if not self.low <= number <= self.high:
            return f"{value!r} is out of range ({allowed})"
        return None

    def cel(self, value: str) -> str:
        low, high = float(self.low), float(self.high)
        number = f"double({value}.trim())"
        return (
            f"type({value}) == int ? double({value}) >= {low!r} && double({value}) <= {high!r}"
            f" : {value}.trim().matches('^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?$')"
            f" && {number} >= {low!r} && {number} <= {high!r}"
        )

    def requirement(self) -> str:
        return f"a number from {self.low:.15g} to {self.high:.15g} (decimals as strings: '0.5')"


@dataclass(frozen=True)
class Boolean:
    """The server reads any other word as OFF, with only a warning."""

    def problem(self, value: object) -> str | None:
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return None
        if isinstance(value, str) and value.strip().lower() in _BOOLEAN_WORDS:
            return None
        return f"{value!r} is not a boolean (ON/OFF, TRUE/FALSE or 1/0)"

    def cel(self, value: str) -> str:
        words = ", ".join(f"'{word}'" for word in sorted(_BOOLEAN_WORDS))
        return (
            f"type({value}) == int ? {value} == 0 || {value} == 1"
            f" : {value}.trim().lowerAscii() in [{words}]"
        )

    def requirement(self) -> str:
        return "ON/OFF, TRUE/FALSE or 1/0 (quoted: YAML reads a bare ON as a boolean)"


_BOOLEAN_WORDS = frozenset({"on", "off", "true", "false", "1", "0"})


@dataclass(frozen=True)
class Choice:
    """One of a list of names, in any case (the server also takes unique prefixes and index
    numbers; we ask for the full name)."""

    names: tuple[str, ...]

    def problem(self, value: object) -> str | None:
        if isinstance(value, str) and value.strip().lower() in {n.lower() for n in self.names}:
            return None
        return f"{value!r} is not one of {', '.join(self.names)}"

    def cel(self, value: str) -> str:
        names = ", ".join(f"'{name.lower()}'" for name in self.names)
        return f"type({value}) == string && {value}.trim().lowerAscii() in [{names}]"

    def requirement(self) -> str:
        return f"one of {', '.join(self.names)}"


@dataclass(frozen=True)
class Modes:
    """A comma-separated set of names without spaces, or empty (the server refuses 'A, B')."""

    names: tuple[str, ...]

    def problem(self, value: object) -> str | None:
        if not isinstance(value, str):
            return f"{value!r} is not a comma-separated list of modes"
        known = {n.lower() for n in self.names}
        unknown = [m for m in value.split(",") if m.lower() not in known] if value else []
        if unknown:
            return (
                f"{value!r} has unknown modes {', '.join(map(repr, unknown))}; "
                f"a comma-separated list without spaces of: {', '.join(self.names)}"
            )
        return None

    def cel(self, value: str) -> str:
        mode = f"(?i:{'|'.join(self.names)})"
        return f"type({value}) == string && {value}.matches('^$|^{mode}(,{mode})*$')"

    def requirement(self) -> str:
        return f"a comma-separated list without spaces of: {', '.join(self.names)}"


@dataclass(frozen=True)
class Collation:
    """<character set>_<name> or binary: the server (see activities/local/config_check.py)
    knows the full list and whether it fits character_set_server."""

    def problem(self, value: object) -> str | None:
        if isinstance(value, str) and _COLLATION.fullmatch(value.strip()):
            return None
        return f"{value!r} is not a collation (<character set>_<name>, e.g. utf8mb4_general_ci)"

    def cel(self, value: str) -> str:
        return f"type({value}) == string && {value}.trim().matches('(?i)^({_COLLATION.pattern})$')"

    def requirement(self) -> str:
        return "a collation: <character set>_<name>, e.g. utf8mb4_general_ci, or binary"


# Copied as the server lists them: information_schema.CHARACTER_SETS (utf8 is the server's alias
# of utf8mb3) and the ENUM_VALUE_LIST of sql_mode.
_CHARACTER_SET_LIST = (
    "armscii8,ascii,big5,binary,cp1250,cp1251,cp1256,cp1257,cp850,cp852,cp866,cp932,dec8,"
    "eucjpms,euckr,gb2312,gbk,geostd8,greek,hebrew,hp8,keybcs2,koi8r,koi8u,latin1,latin2,"
    "latin5,latin7,macce,macroman,sjis,swe7,tis620,ucs2,ujis,utf16,utf16le,utf32,utf8,utf8mb3,"
    "utf8mb4"
)
_SQL_MODE_LIST = (
    "REAL_AS_FLOAT,PIPES_AS_CONCAT,ANSI_QUOTES,IGNORE_SPACE,IGNORE_BAD_TABLE_OPTIONS,"
    "ONLY_FULL_GROUP_BY,NO_UNSIGNED_SUBTRACTION,NO_DIR_IN_CREATE,POSTGRESQL,ORACLE,MSSQL,DB2,"
    "MAXDB,NO_KEY_OPTIONS,NO_TABLE_OPTIONS,NO_FIELD_OPTIONS,MYSQL323,MYSQL40,ANSI,"
    "NO_AUTO_VALUE_ON_ZERO,NO_BACKSLASH_ESCAPES,STRICT_TRANS_TABLES,STRICT_ALL_TABLES,"
    "NO_ZERO_IN_DATE,NO_ZERO_DATE,ALLOW_INVALID_DATES,ERROR_FOR_DIVISION_BY_ZERO,TRADITIONAL,"
    "NO_AUTO_CREATE_USER,HIGH_NOT_PRECEDENCE,NO_ENGINE_SUBSTITUTION,PAD_CHAR_TO_FULL_LENGTH,"
    "EMPTY_STRING_IS_NULL,SIMULTANEOUS_ASSIGNMENT,TIME_ROUND_FRACTIONAL"
)
CHARACTER_SETS: tuple[str, ...] = tuple(_CHARACTER_SET_LIST.split(","))
SQL_MODES: tuple[str, ...] = tuple(_SQL_MODE_LIST.split(","))
_COLLATION = re.compile(rf"binary|({'|'.join(CHARACTER_SETS)})_[a-z0-9_]+", re.IGNORECASE)

ValueType = Integer | Real | Boolean | Choice | Modes | Collation

_U32 = 2**32 - 1
_U64 = 2**64 - 1
_I64 = 2**63 - 1

# The options a user may set, typed as MariaDB 10.11 defines them: information_schema.
# SYSTEM_VARIABLES (VARIABLE_TYPE, NUMERIC_MIN_VALUE, NUMERIC_MAX_VALUE, ENUM_VALUE_LIST);
# transaction_isolation is the option of the variable tx_isolation.
VALUE_TYPES: dict[str, ValueType] = {
    "binlog_expire_logs_seconds": Integer(0, 8553600),
    "character_set_server": Choice(CHARACTER_SETS),
    "collation_server": Collation(),
    "connect_timeout": Integer(2, 31536000),
    "innodb_flush_method": Choice(
        ("fsync", "O_DSYNC", "littlesync", "nosync", "O_DIRECT", "O_DIRECT_NO_FSYNC")
    ),
    "innodb_io_capacity": Integer(100, _U32),
    "innodb_lock_wait_timeout": Integer(0, 100000000),
    "innodb_log_buffer_size": Integer(2097152, 2147479552),
    "innodb_log_file_size": Integer(4194304, _U64),
    "interactive_timeout": Integer(1, 31536000),
    "join_buffer_size": Integer(128, _U64),
    "lock_wait_timeout": Integer(0, 31536000),
    "long_query_time": Real(0, 31536000),
    "max_allowed_packet": Integer(1024, 1073741824),
    "max_binlog_size": Integer(4096, 1073741824),
    "max_connect_errors": Integer(1, _U32),
    "max_connections": Integer(10, 100000),
    "max_heap_table_size": Integer(16384, _U64),
    "performance_schema": Boolean(),
    "slow_query_log": Boolean(),
    "sort_buffer_size": Integer(1024, _U64),
    "sql_mode": Modes(SQL_MODES),
    "sync_binlog": Integer(0, _U32),
    "table_definition_cache": Integer(400, 2097152),
    "table_open_cache": Integer(10, 1048576),
    "thread_cache_size": Integer(0, 16384),
    "tmp_table_size": Integer(0, _U64),
    "transaction_isolation": Choice(
        ("READ-UNCOMMITTED", "READ-COMMITTED", "REPEATABLE-READ", "SERIALIZABLE")
    ),
    "wait_timeout": Integer(1, 31536000),
    "wsrep_slave_threads": Integer(1, 512),
    "wsrep_sync_wait": Integer(0, 15),
}

TUNABLE: frozenset[str] = frozenset(VALUE_TYPES)


def _integer(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and (match := _INTEGER.fullmatch(value.strip())):
        return int(match[1]) << 10 * _SUFFIX_POWER[match[2].upper()]
    return None


def _real(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        return float(value)
    return None


def normalize(option: str) -> str:
    """MySQL treats '-' and '_' alike in option names; we store the '_' spelling."""
    return option.strip().lower().replace("-", "_")


def check_option(option: str) -> str:
    """The normalized option name, or ValueError saying why it may not be set."""
    name = normalize(option)
    if name in MANAGED:
        raise ValueError(f"option {option!r} is managed by mysqlops and cannot be overridden")
    if name not in TUNABLE:
        raise ValueError(f"unknown MySQL option {option!r}; allowed: {', '.join(sorted(TUNABLE))}")
    return name


def check_value(option: str, value: object) -> None:
    """ValueError naming the option and what it takes, unless the server takes `value` for it.
    A value must also stay on its own line of my.cnf: no line breaks, no comment marks."""
    name = check_option(option)
    if isinstance(value, str) and any(c in value for c in "\n\r#"):
        raise ValueError(f"value of {option!r} must be one line without '#'")
    if problem := VALUE_TYPES[name].problem(value):
        raise ValueError(f"{name}: {problem}")


# -- the same checks in the CRD -------------------------------------------------------------
# On Kubernetes, `kubectl apply` refuses what check_option and check_value refuse, with CEL rules
# on `spec.mysql.config` (tests/unit/test_crd_examples.py runs them against the functions). A
# value is an integer or a string there (x-kubernetes-int-or-string): CEL rules cannot see a map
# whose values may be anything (x-kubernetes-preserve-unknown-fields), so booleans and decimals
# are written as strings ('ON', '0.5'), which the server and check_value take as well.

# The option name as normalize() spells it, for a key `k` of the map.
_NORMALIZED_KEY = "k.trim().lowerAscii().replace('-', '_')"
CONFIG_VALUE_MAX_LENGTH = 512  # the longest sql_mode (every mode) fits; bounds the rules' cost


def _cel_list(names: list[str]) -> str:
    return "[" + ", ".join(f"'{name}'" for name in names) + "]"


def config_schema() -> JsonDict:
    """The JSON Schema keywords of `spec.mysql.config` in the CRD: its values, its size, and
    CEL rules for the allow-list, one-line values, and each option's values."""
    rules: list[JsonValue] = [
        {
            "rule": f"self.all(k, {_NORMALIZED_KEY} in {_cel_list(sorted(TUNABLE))})",
            "message": "unknown MySQL option or one mysqlops manages; allowed: "
            + ", ".join(sorted(TUNABLE)),
        },
        {
            "rule": "self.all(k, type(self[k]) != string || !(self[k].contains('\\n')"
            " || self[k].contains('\\r') || self[k].contains('#')))",
            "message": "a value must be one line without '#'",
        },
    ]
    for name, kind in VALUE_TYPES.items():
        rules.append(
            {
                "rule": f"self.all(k, {_NORMALIZED_KEY} != '{name}' || ({kind.cel('self[k]')}))",
                "message": f"{name} takes {kind.requirement()}",
            }
        )
    return {
        "maxProperties": len(TUNABLE),
        "additionalProperties": {
            "x-kubernetes-int-or-string": True,
            "maxLength": CONFIG_VALUE_MAX_LENGTH,
        },
        "x-kubernetes-validations": rules,
    }


# How mariadbd words a configuration it cannot start with (my_getopt, the my.cnf reader and
# the character set setup); found by starting 10.11 with each kind of mistake.
_CONFIG_ERROR = re.compile(
    "|".join(
        (
            r"unknown (variable|option) '",
            r"ambiguous option '--",
            r"option '-[^']*' (requires an argument|cannot take an argument)",
            r"Unknown suffix '.' used for variable '",
            r"Incorrect unsigned value: '",
            r"Integer value out of range for u?int64: '",
            r"Invalid decimal value for option '",
            r"Error while setting value '",
            r"Parsing options for plugin '[^']*' failed",
            r"Unknown collation: '",
            r"COLLATION '[^']*' is not valid for CHARACTER SET '",
            r"Character set '[^']*' is not a compiled character set",
            r"Found option without preceding group in config file",
            r"Wrong (group definition|'![^']*' directive) in config file",
        )
    )
)


def config_error(text: str) -> str | None:
    """The line of an error log text (lines, or `[ERROR]` texts joined with ' | ') that shows
    the node could not start with its configuration, or None."""
    for line in re.split(r" \| |\n", text):
        if _CONFIG_ERROR.search(line):
            return line.strip().removeprefix("Buffered error: ")
    return None
