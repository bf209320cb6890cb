"""Reading profiles: by key (one request per key, concurrently) or in batches (one request per
`max_batch` keys, following pagination), and finding each key's record in the answers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, urlencode, urljoin, urlsplit

from hub.ports import Record

from .caller import Caller
from .config import KEY, KEYS, Batch, ByKey, Fetch, Pagination
from .resilience import Deadline
from .wire import Answer

T = TypeVar("T")


def dig(node: Any, path: str | None) -> Any:
    """The value at a dotted path in a JSON answer (a number picks a list item); None when absent."""
    if path is None:
        return node
    for part in path.split("."):
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def with_query(url: str, params: Mapping[str, Any]) -> str:
    """`url` with `params` appended to its query. Built by hand, not by httpx's params merge, which
    would re-encode the query the path template already holds (the separator between keys)."""
    if not params:
        return url
    return f"{url}{'&' if '?' in url else '?'}{urlencode({k: str(v) for k, v in params.items()})}"


def _with_keys(node: Any, keys: list[str]) -> Any:
    """A POST body template with the string "{keys}" replaced by the list of keys."""
    if node == KEYS:
        return keys
    if isinstance(node, dict):
        return {k: _with_keys(v, keys) for k, v in node.items()}
    if isinstance(node, list):
        return [_with_keys(v, keys) for v in node]
    return node


async def all_or_nothing(coros: Iterable[Awaitable[T]]) -> list[T]:
    """Await all; on the first failure cancel (and await) the rest, then raise it. A partial read would
    make the missing keys look unknown, and the hub would cache that."""
    pending = list(coros)
    if len(pending) == 1:  # the usual case (one batch): no task of its own
        return [await pending[0]]
    tasks = [asyncio.ensure_future(c) for c in pending]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


@dataclass(slots=True)
class _Page:
    method: str
    url: str
    body: Any = None
    number: int = 1  # pages read so far, this one included
    page: int = 0  # the page parameter (style page)
    params: dict[str, Any] = field(default_factory=dict)

    def request(self) -> dict[str, Any]:
        if self.method == "POST":
            body = {**self.body, **self.params} if isinstance(self.body, dict) else self.body
            return {"json": body}
        return {}

    def target(self) -> str:
        return with_query(self.url, self.params) if self.method == "GET" else self.url


class ProfileReader:
    def __init__(self, config: Fetch, caller: Caller, base_url: str):
        self.config = config
        self._caller = caller
        self._origin = _origin(base_url)

    def _norm(self, key: str) -> str:
        return key.casefold() if self.config.key_match == "ignore_case" else key

    async def fetch(self, keys: Sequence[str], deadline: Deadline) -> dict[str, Record]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        batch = self.config.batch
        if batch is not None:
            chunks = [wanted[i : i + batch.max_batch] for i in range(0, len(wanted), batch.max_batch)]
            found: dict[str, Record] = {}
            for part in await all_or_nothing(self._batch(batch, c, deadline) for c in chunks):
                found |= part
            return found
        by_key = self.config.by_key
        assert by_key is not None, "checked by the config"
        records = await all_or_nothing(self._one(by_key, k, deadline) for k in wanted)
        return {k: r for k, r in zip(wanted, records, strict=True) if r is not None}

    # --- by key ------------------------------------------------------------------------------------

    async def _one(self, by_key: ByKey, key: str, deadline: Deadline) -> Record | None:
        what = f"GET {by_key.path}"
        url = by_key.path.replace(KEY, quote(key, safe=""))
        response = await self._caller.send("GET", url, what=what, deadline=deadline)
        if response.status_code in (404, 204):
            return None  # the system does not know this key
        # A record that is not an object is passed on: the translator reports it as a data problem
        # of this system, which says more than a failed read.
        record: Any = dig(self._json(response, what), by_key.record)
        return record

    # --- batches -----------------------------------------------------------------------------------

    async def _batch(self, batch: Batch, keys: list[str], deadline: Deadline) -> dict[str, Record]:
        what = f"{batch.method} {batch.path}"
        by_norm: dict[str, list[str]] = {}  # with ignore_case, keys that differ in case share a record
        for k in keys:
            by_norm.setdefault(self._norm(k), []).append(k)
        found: dict[str, Record] = {}
        page: _Page | None = self._first_page(batch, keys)
        while page is not None:
            response = await self._caller.send(
                page.method,
                page.target(),
                what=what if page.number == 1 else f"{what} (page {page.number})",
                deadline=deadline,
                **page.request(),
            )
            body = self._json(response, what)
            records = dig(body, batch.records)
            if not isinstance(records, list):
                where = f"at {batch.records!r}" if batch.records else "as the answer"
                raise self._caller.error(f"{what}: the answer has no list of records {where}")
            for record in records:
                if not isinstance(record, Mapping):
                    continue
                raw = dig(record, batch.key_field)
                if raw is None or isinstance(raw, (bool, dict, list)):
                    continue
                for key in by_norm.get(self._norm(str(raw)), ()):
                    found.setdefault(key, record)
            if len(found) == len(keys):
                break  # every key is found: later pages can only hold other records
            page = self._next_page(batch.pagination, page, response, body, len(records), what)
        return found

    def _first_page(self, batch: Batch, keys: list[str]) -> _Page:
        p = batch.pagination
        params: dict[str, Any] = {}
        if p is not None:
            if p.size_param is not None:
                params[p.size_param] = p.size
            if p.style == "page":
                assert p.param is not None
                params[p.param] = p.start
        if batch.method == "GET":
            joined = batch.separator.join(quote(k, safe="") for k in keys)
            return _Page("GET", batch.path.replace(KEYS, joined), params=params, page=p.start if p else 0)
        return _Page(
            "POST", batch.path, _with_keys(batch.body, keys), params=params, page=p.start if p else 0
        )

    def _next_page(
        self, p: Pagination | None, page: _Page, response: Answer, body: Any, count: int, what: str
    ) -> _Page | None:
        if p is None:
            return None
        nxt: _Page | None = None
        if p.style in ("next_link", "link_header"):
            link = dig(body, p.next) if p.style == "next_link" else response.links.get("next", {}).get("url")
            if isinstance(link, str) and link:
                url = urljoin(self._caller.wire.url(page.target()), link)
                if _origin(url) != self._origin:
                    # Following it would send the credentials to another host.
                    raise self._caller.error(f"{what}: the next-page link leads to another host")
                nxt = _Page("GET", url)
        elif p.style == "page":
            last = count == 0 or (p.size is not None and count < p.size)
            if not last:
                assert p.param is not None
                nxt = _Page(
                    page.method,
                    page.url,
                    page.body,
                    params={**page.params, p.param: page.page + 1},
                    page=page.page + 1,
                )
        else:  # cursor
            cursor = dig(body, p.next)
            if cursor not in (None, "") and not isinstance(cursor, (dict, list, bool)):
                assert p.param is not None
                nxt = _Page(page.method, page.url, page.body, params={**page.params, p.param: cursor})
        if nxt is None:
            return None
        nxt.number = page.number + 1
        if nxt.number > p.max_pages:
            raise self._caller.error(
                f"{what}: the answer runs over max_pages ({p.max_pages}); raise it or lower max_batch"
            )
        return nxt

    def _json(self, response: Answer, what: str) -> Any:
        if not 200 <= response.status_code < 300:
            hint = (
                " (redirects are not followed: check base_url and the path)" if response.is_redirect else ""
            )
            raise self._caller.error(f"{what}: HTTP {response.status_code}{hint}")
        try:
            return response.json()
        except ValueError:
            raise self._caller.error(f"{what}: the answer is not JSON") from None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port
