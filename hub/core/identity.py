"""Identity keys: normalisation and the identity graph (key -> golden customer id)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

import phonenumbers
from sqlalchemy import bindparam, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.core.errors import BadInput
from hub.events import utcnow
from hub.model import GOLDEN_ID, Key, KeyKind
from hub.model.customer import GOLDEN_ID_PREFIX, is_golden_id
from hub.store.direct import SKIP_CONFLICTS, insert_rows
from hub.store.tables import customer_keys, customers
from hub.store.types import any_of

Tx = AsyncConnection
ECHO = 60  # the most of a caller's invalid value an error message repeats


def normalize_email(raw: str) -> str:
    email = "".join(raw.split()).lower()
    local, at, domain = email.partition("@")
    if not at or not local or "." not in domain or domain.startswith(".") or domain.endswith("."):
        raise BadInput(f"not an email address: {raw[:ECHO]!r}", field="email")
    return email


def normalize_phone(raw: str, region: str | None) -> str:
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise BadInput(f"not a phone number: {raw[:ECHO]!r} ({exc})", field="phone") from None
    if not phonenumbers.is_possible_number(number):
        raise BadInput(f"not a possible phone number: {raw[:ECHO]!r}", field="phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_token(raw: str, field: str) -> str:
    value = raw.strip()
    if not value or len(value) > 200:
        raise BadInput(f"{field} must be 1 to 200 characters", field=field)
    return value


def keys_from(
    *,
    email: str | None = None,
    phone: str | None = None,
    customer_id: str | None = None,
    cookie_id: str | None = None,
    region: str | None = None,
    id_or_number: str | None = None,
) -> list[Key]:
    """The keys a caller identifies a customer by. `customer_id` is the customer number;
    `id_or_number` (the API's deprecated identification.customerId) is a golden id when it looks like
    one (cus_…: a key of kind GOLDEN_ID, which finds that customer and is never linked) and a customer
    number otherwise."""
    keys: list[Key] = []
    if id_or_number is not None:
        if is_golden_id(id_or_number.strip()):
            keys.append(Key(GOLDEN_ID, id_or_number.strip()))
        else:
            keys.append(Key(KeyKind.CUSTOMER_ID, normalize_token(id_or_number, "customerId")))
    if email is not None:
        keys.append(Key(KeyKind.EMAIL, normalize_email(email)))
    if phone is not None:
        keys.append(Key(KeyKind.PHONE, normalize_phone(phone, region)))
    if customer_id is not None:
        keys.append(Key(KeyKind.CUSTOMER_ID, normalize_token(customer_id, "customerId")))
    if cookie_id is not None:
        keys.append(Key(KeyKind.COOKIE_ID, normalize_token(cookie_id, "cookieId")))
    return list(dict.fromkeys(keys))  # a number given both ways is one key


def new_customer_id() -> str:
    return f"{GOLDEN_ID_PREFIX}{uuid.uuid4().hex[:20]}"


# Built once: a statement made per call costs SQLAlchemy more CPU (coercion, cache key) than its
# execution on a warm connection. The pairs are an expanding parameter, the ids an array (any_of).
_FIND_KEYS = select(customer_keys.c.kind, customer_keys.c.value, customer_keys.c.customer_id).where(
    tuple_(customer_keys.c.kind, customer_keys.c.value).in_(bindparam("pairs", expanding=True))
)
_FIND_CUSTOMERS = select(customers.c.id).where(any_of(customers.c.id, "ids"))


class IdentityGraph:
    """Finds customers by any key and links keys given together to one customer."""

    async def lookup(self, tx: Tx, keys: Iterable[Key]) -> dict[Key, str]:
        given = list(keys)
        wanted = [k for k in given if k.kind != GOLDEN_ID]
        golden = [k for k in given if k.kind == GOLDEN_ID]
        found: dict[Key, str] = {}
        if golden:  # a golden id finds its customer, when there is one
            ids = [k.value for k in golden]
            existing = {r.id for r in await tx.execute(_FIND_CUSTOMERS, {"ids": ids})}
            found.update({k: k.value for k in golden if k.value in existing})
        if not wanted:
            return found
        rows = await tx.execute(_FIND_KEYS, {"pairs": [(str(k.kind), k.value) for k in wanted]})
        found.update({Key(r.kind, r.value): r.customer_id for r in rows})
        return found

    async def keys_of(self, tx: Tx, kind: str, customer_ids: Sequence[str]) -> dict[str, str]:
        """Golden id -> that customer's key of `kind` (a system's own id, an email...). The golden id
        itself for kind `id`. Customers without such a key are left out."""
        ids = list(dict.fromkeys(customer_ids))
        if kind == GOLDEN_ID:
            return {cid: cid for cid in ids}
        rows = await tx.execute(
            select(customer_keys.c.customer_id, customer_keys.c.value)
            .where(customer_keys.c.kind == kind, any_of(customer_keys.c.customer_id, "ids"))
            .order_by(customer_keys.c.created_at),
            {"ids": ids},
        )
        out: dict[str, str] = {}
        for r in rows:
            out.setdefault(r.customer_id, r.value)  # the first key of that kind is the system's
        return out

    async def exists(self, tx: Tx, customer_id: str) -> bool:
        row = await tx.execute(select(customers.c.id).where(customers.c.id == customer_id))
        return row.first() is not None

    async def create(self, tx: Tx, customer_id: str) -> None:
        await self.create_many(tx, [customer_id])

    async def create_many(self, tx: Tx, customer_ids: Sequence[str]) -> None:
        if customer_ids:
            now = utcnow()
            await insert_rows(tx, customers, [{"id": cid, "created_at": now} for cid in customer_ids])

    async def link(self, tx: Tx, customer_id: str, keys: Iterable[Key]) -> list[Key]:
        """Attach keys to the customer; keys already owned (by anyone) are left as they are."""
        given = list(keys)
        linked = await self.link_many(tx, [(customer_id, k) for k in given])
        return [k for k in given if k in linked]

    async def link_many(self, tx: Tx, pairs: Iterable[tuple[str, Key]]) -> set[Key]:
        """Attach each key to its customer in one statement; the keys linked (one owned already, by
        anyone, is left as it is). In key order, so that two transactions never wait on each other's
        keys in opposite orders."""
        now = utcnow()
        rows = sorted(
            (
                {"kind": str(k.kind), "value": k.value, "customer_id": cid, "created_at": now}
                for cid, k in pairs
                if k.kind != GOLDEN_ID  # the customer's own id, not a key of it
            ),
            key=lambda r: (r["kind"], r["value"]),
        )
        if not rows:
            return set()
        linked = await insert_rows(
            tx, customer_keys, rows, conflict=SKIP_CONFLICTS, returning=("kind", "value")
        )
        return {Key(r.kind, r.value) for r in linked}
