"""The application user's database patterns cover every name but `mysql`."""

import re

import pytest

from activities.users import database_patterns, user_statements


def like(pattern: str, name: str) -> bool:
    """MariaDB's LIKE for grant patterns: '%' any run, '_' one char, backslash escapes."""
    regex = ""
    chars = iter(pattern)
    for c in chars:
        if c == "\\":
            regex += re.escape(next(chars))
        elif c == "%":
            regex += ".*"
        elif c == "_":
            regex += "."
        else:
            regex += re.escape(c)
    return re.fullmatch(regex, name) is not None


@pytest.mark.parametrize(
    "name",
    [
        "shop",
        "m",
        "my",
        "mys",
        "mysq",
        "mysqlx",
        "mysql_app",
        "my_sql",
        "Mysql",
        "_tmp",
        "1st",
        "test",
        "sysbench",
        "$x",
    ],
)
def test_application_databases_are_covered(name: str) -> None:
    assert any(like(p, name) for p in database_patterns())


def test_the_mysql_schema_is_not() -> None:
    assert not any(like(p, "mysql") for p in database_patterns())


def test_no_statement_grants_on_everything() -> None:
    statements = user_statements("a", "m", "host")
    assert not any("ON *.* TO 'app'" in s for s in statements)
    assert any("CREATE USER IF NOT EXISTS 'app'@'%'" in s for s in statements)
