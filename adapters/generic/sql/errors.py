"""What a failure may say, and where.

A GraphQL answer gets a short message: what failed and the driver's exception class. Driver messages
are left out there because they may quote parameter values (asyncpg: "invalid input for query argument
$1: 'anna@example.com'"), and SQLAlchemy's add the SQL. The log gets the driver's first line, with the
password and URL removed; the SQL parameters are hidden by the engine (`hide_parameters`).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, quote_plus

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, NoSuchTableError

_MAX_LOGGED = 500


@dataclass(frozen=True, slots=True)
class Redactor:
    """Removes the URL's secrets from any text before it is logged or answered."""

    secrets: tuple[str, ...]

    @classmethod
    def of(cls, url: URL, raw: str) -> Redactor:
        found = [raw, url.render_as_string(hide_password=False)]
        if url.password:
            password = str(url.password)
            found += [password, quote(password, safe=""), quote_plus(password)]  # as typed in the URL too
        # Longest first, so the whole URL goes before the password inside it.
        return cls(tuple(sorted({s for s in found if s}, key=len, reverse=True)))

    def clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def driver_error(exc: BaseException) -> BaseException:
    """The driver's own exception behind SQLAlchemy's wrapper (asyncpg's UndefinedTableError...)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        orig: BaseException = exc.orig
        # The async adapters wrap the driver's exception once more; its class name says more.
        inner = orig.__cause__ or orig.__context__
        return inner if inner is not None and type(orig).__name__ in _ADAPTER_WRAPPERS else orig
    return exc


# SQLAlchemy's DBAPI-style wrappers around async drivers' exceptions (PEP 249 names).
_ADAPTER_WRAPPERS = frozenset(
    {
        "Error",
        "DatabaseError",
        "InterfaceError",
        "DataError",
        "OperationalError",
        "IntegrityError",
        "InternalError",
        "ProgrammingError",
        "NotSupportedError",
    }
)


def kind(exc: BaseException) -> str:
    """The short, value-free name of a failure: the driver's exception class."""
    if isinstance(exc, NoSuchTableError):
        return "table not found"
    return type(driver_error(exc)).__name__


def first_line(exc: BaseException, redactor: Redactor) -> str:
    """The driver's first line of text for the log, secrets removed."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return redactor.clean(line)[:_MAX_LOGGED]
