"""The transforms a mapping may apply to a system's value on its way into the unified customer.

Each is `name` or `{name: argument}` in YAML. `build(spec)` checks the spec at load time (so a bad one
is reported with its line); the function it returns raises `ValueError` for a value it cannot take,
which the translator reports with the system and field. A list value is transformed item by item.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

import phonenumbers

Fn = Callable[[Any], Any]


def _text(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError(f"expected text, got {type(v).__name__}")
    return v


def _e164(region: Any) -> Fn:
    if region is not None and (not isinstance(region, str) or len(region) != 2):
        raise ValueError("e164 takes a two-letter region, e.g. {e164: NL}")

    def fn(v: Any) -> str:
        try:
            number = phonenumbers.parse(_text(v), region)
        except phonenumbers.NumberParseException as exc:
            raise ValueError(f"not a phone number ({exc})") from None
        if not phonenumbers.is_possible_number(number):
            raise ValueError("not a possible phone number")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    return fn


def _date(fmt: Any) -> Fn:
    if fmt is not None and not isinstance(fmt, str):
        raise ValueError("date takes a strptime format, e.g. {date: '%d-%m-%Y'}")

    def fn(v: Any) -> str:
        if isinstance(v, date):
            return (v.date() if isinstance(v, datetime) else v).isoformat()
        text = _text(v).strip()
        parsed = datetime.strptime(text, fmt).date() if fmt else date.fromisoformat(text[:10])
        return parsed.isoformat()

    return fn


def _datetime(fmt: Any) -> Fn:
    if fmt is not None and not isinstance(fmt, str):
        raise ValueError("datetime takes a strptime format")

    def fn(v: Any) -> str:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            parsed = datetime.fromtimestamp(v, UTC)
        elif isinstance(v, datetime):
            parsed = v
        else:
            text = _text(v).strip()
            parsed = datetime.strptime(text, fmt) if fmt else datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC).isoformat()

    return fn


def _number(_: Any) -> Fn:
    def fn(v: Any) -> int | float:
        if isinstance(v, bool):
            raise ValueError("expected a number, got a boolean")
        if isinstance(v, (int, float)):
            return v
        text = _text(v).strip().replace(",", ".")
        number = float(text)
        return int(number) if number.is_integer() and "." not in text else number

    return fn


_NO_DEFAULT = object()


def _lookup(arg: Any) -> Fn:
    if not isinstance(arg, Mapping) or not arg:
        raise ValueError(
            "lookup takes a table, e.g. {lookup: {G: gold, S: silver}} or {table: ..., default: x}"
        )
    if set(arg) <= {"table", "default"} and isinstance(arg.get("table"), Mapping):
        table, default = dict(arg["table"]), arg.get("default", _NO_DEFAULT)
    else:
        table, default = dict(arg), _NO_DEFAULT
    keys = {str(k): v for k, v in table.items()}

    def fn(v: Any) -> Any:
        found = keys.get(str(v), _NO_DEFAULT)
        if found is _NO_DEFAULT:
            if default is _NO_DEFAULT:
                raise ValueError(f"{v!r} is not in the lookup table")
            return default
        return found

    return fn


def _template(arg: Any) -> Fn:
    if not isinstance(arg, str) or "{value}" not in arg:
        raise ValueError("template takes text with {value}, e.g. {template: 'Dr. {value}'}")
    return lambda v: arg.replace("{value}", str(v))


def _plain(fn: Fn) -> Callable[[Any], Fn]:
    def build(arg: Any) -> Fn:
        if arg is not None:
            raise ValueError("takes no argument")
        return fn

    return build


TRANSFORMS: dict[str, Callable[[Any], Fn]] = {
    "lower": _plain(lambda v: _text(v).lower()),
    "upper": _plain(lambda v: _text(v).upper()),
    "trim": _plain(lambda v: " ".join(_text(v).split())),
    "e164": _e164,
    "date": _date,
    "datetime": _datetime,
    "number": _number,
    "lookup": _lookup,
    "template": _template,
}


def build(spec: Any) -> Fn:
    """The function for one transform spec; ValueError with a message for a bad spec."""
    if isinstance(spec, str):
        name, arg = spec, None
    elif isinstance(spec, Mapping) and len(spec) == 1:
        ((name, arg),) = spec.items()
    else:
        raise ValueError("a transform is a name or {name: argument}")
    factory = TRANSFORMS.get(name)
    if factory is None:
        raise ValueError(f"unknown transform {name!r} (known: {', '.join(TRANSFORMS)})")
    try:
        return factory(arg)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
