"""Reading profiles over real HTTP: by key, in batches, with pagination, and the request counts."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote

import orjson
import pytest

from hub.ports import AdapterError
from tests.adapters.rest.conftest import MEMBERS


def seed(system, n: int = 3) -> list[str]:
    emails = [f"member{i}@example.com" for i in range(n)]
    for i, email in enumerate(emails):
        system.add(email, firstName=f"M{i}", tier="G", points=str(100 * i))
    return emails


async def test_by_key_reads_each_key_concurrently_and_404_is_an_unknown_key(system, base_url, make_adapter):
    emails = seed(system, 3)
    system.delay = 0.2  # concurrent: all requests are in before the first answer
    adapter = await make_adapter(base_url, fetch=MEMBERS, max_concurrency=8)
    found = await adapter.fetch([*emails, "nobody@example.com", emails[0]])
    assert set(found) == set(emails)
    assert found[emails[1]]["firstName"] == "M1"
    hits = system.requests("/members")
    assert sorted(unquote(h.path) for h in hits) == sorted(f"/members/{e}" for e in [*emails, "nobody@example.com"])
    first_answer = min(h.at for h in hits) + system.delay
    assert all(h.at < first_answer for h in hits), "by-key reads run concurrently"


async def test_by_key_concurrency_is_bounded(system, base_url, make_adapter):
    emails = seed(system, 4)
    system.delay = 0.15
    adapter = await make_adapter(base_url, fetch=MEMBERS, max_concurrency=2)
    assert len(await adapter.fetch(emails)) == 4
    arrivals = sorted(h.at for h in system.requests("/members"))
    # Two at a time: the third request arrives only once one of the first two was answered.
    assert arrivals[2] - arrivals[0] >= system.delay * 0.9


async def test_a_batch_of_keys_is_one_request(system, base_url, make_adapter):
    emails = seed(system, 5)
    adapter = await make_adapter(
        base_url, fetch={"batch": {"path": "/members?ids={keys}", "records": "items", "key_field": "email"}}
    )
    found = await adapter.fetch([*emails, "nobody@example.com"])
    assert set(found) == set(emails)
    (hit,) = system.requests("/members")
    assert parse_qs(hit.query)["ids"] == [",".join([*emails, "nobody@example.com"])]


async def test_a_gzipped_answer_is_read(system, base_url, make_adapter):
    """aiohttp asks for gzip and undoes it; the answer must not be decoded a second time."""
    emails = seed(system, 2)
    system.gzip = True
    adapter = await make_adapter(
        base_url, fetch={"batch": {"path": "/members?ids={keys}", "records": "items", "key_field": "email"}}
    )
    found = await adapter.fetch(emails)
    assert found[emails[1]]["firstName"] == "M1"


async def test_more_keys_than_max_batch_are_chunked(system, base_url, make_adapter):
    emails = seed(system, 5)
    adapter = await make_adapter(
        base_url,
        fetch={"batch": {"path": "/members?ids={keys}", "records": "items", "key_field": "email", "max_batch": 2}},
    )
    assert set(await adapter.fetch(emails)) == set(emails)
    sizes = sorted(len(parse_qs(h.query)["ids"][0].split(",")) for h in system.requests("/members"))
    assert sizes == [1, 2, 2]


async def test_post_batch_sends_the_keys_in_the_body_and_matches_keys_ignoring_case(
    system, base_url, make_adapter
):
    system.add("Anna.Devries@Example.com", firstName="Anna")
    adapter = await make_adapter(
        base_url,
        fetch={
            "key_match": "ignore_case",
            "batch": {
                "method": "POST", "path": "/search", "body": {"query": {"emails": "{keys}"}, "fields": ["all"]},
                "records": "data.items", "key_field": "email",
            },
        },
    )
    found = await adapter.fetch(["anna.devries@example.com", "x@example.com"])
    assert found == {"anna.devries@example.com": {"email": "Anna.Devries@Example.com", "firstName": "Anna"}}
    (hit,) = system.requests("/search")
    assert hit.method == "POST"
    assert orjson.loads(hit.body) == {
        "query": {"emails": ["anna.devries@example.com", "x@example.com"]}, "fields": ["all"]
    }


def paged(endpoint: str, **pagination) -> dict:
    return {
        "batch": {
            "path": f"/pages/{endpoint}?ids={{keys}}", "records": "items", "key_field": "email",
            "pagination": pagination,
        }
    }


@pytest.mark.parametrize(
    ("endpoint", "pagination"),
    [
        ("next-link", {"style": "next_link", "next": "links.next"}),
        ("link-header", {"style": "link_header"}),
        ("numbered", {"style": "page", "param": "page", "size_param": "per_page", "size": 2}),
        ("cursor", {"style": "cursor", "param": "cursor", "next": "meta.next"}),
    ],
)
async def test_pagination_styles_collect_every_page(system, base_url, make_adapter, endpoint, pagination):
    emails = seed(system, 5)  # 3 pages of 2
    adapter = await make_adapter(base_url, fetch=paged(endpoint, **pagination))
    assert set(await adapter.fetch(emails)) == set(emails)
    assert len(system.requests("/pages")) == 3


async def test_pagination_stops_once_every_key_is_found(system, base_url, make_adapter):
    emails = seed(system, 6)
    adapter = await make_adapter(base_url, fetch=paged("cursor", style="cursor", param="cursor", next="meta.next"))
    assert set(await adapter.fetch(emails[:2])) == set(emails[:2])
    assert len(system.requests("/pages")) == 1


async def test_post_pagination_sends_the_cursor_in_the_body(system, base_url, make_adapter):
    emails = seed(system, 3)
    adapter = await make_adapter(
        base_url,
        fetch={"batch": {
            "method": "POST", "path": "/pages/cursor", "body": {"emails": "{keys}"}, "records": "items",
            "key_field": "email", "pagination": {"style": "cursor", "param": "cursor", "next": "meta.next"},
        }},
    )
    assert set(await adapter.fetch(emails)) == set(emails)
    bodies = [orjson.loads(h.body) for h in system.requests("/pages")]
    assert [b.get("cursor") for b in bodies] == [None, "2"]


async def test_max_pages_guards_against_an_endless_answer(system, base_url, make_adapter):
    adapter = await make_adapter(
        base_url, fetch=paged("endless", style="next_link", next="next", max_pages=4)
    )
    with pytest.raises(AdapterError, match=r"max_pages \(4\)"):
        await adapter.fetch(["someone@example.com"])
    assert len(system.requests("/pages")) == 4


async def test_a_next_link_to_another_host_is_not_followed(system, base_url, make_adapter):
    seed(system, 3)
    system.page_size = 1
    adapter = await make_adapter(base_url, fetch=paged("elsewhere", style="next_link", next="next"))
    with pytest.raises(AdapterError, match="another host") as err:
        await adapter.fetch(["member0@example.com", "member2@example.com"])
    assert "other.example" not in str(err.value)


async def test_an_answer_that_is_not_a_list_of_records_is_an_error(system, base_url, make_adapter):
    adapter = await make_adapter(
        base_url, fetch={"batch": {"path": "/members?ids={keys}", "records": "data.rows", "key_field": "email"}}
    )
    with pytest.raises(AdapterError, match=r"no list of records at 'data\.rows'"):
        await adapter.fetch(["a@example.com"])


async def test_no_keys_no_request(system, base_url, make_adapter):
    adapter = await make_adapter(base_url, fetch=MEMBERS)
    assert await adapter.fetch([]) == {}
    assert system.hits == []
