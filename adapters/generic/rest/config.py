"""The REST adapter's configuration: what an integrator writes under `systems.<name>.config`.

Validated by the registry at load, so a mistake is reported with file and line before the hub serves.
Secrets are `SecretStr` filled from the environment (`${VAR}` in the mapping): their values never show
in a repr, a log line or an error. Validation messages never quote a value, since it may be a secret.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from hub.ports import AdapterConfig

KEY = "{key}"
KEYS = "{keys}"
PLACEHOLDER = re.compile(r"\{[^{}]*\}")
# A dotted path into a JSON answer, as the mapping's field paths are written (`data.items`, `meta.next`).
DOTTED = re.compile(r"^[A-Za-z0-9_$@-]+(\.[A-Za-z0-9_$@-]+)*$")
HEADER = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")  # an HTTP token (RFC 9110 field-name)
LOOPBACK_NAMES = {"localhost"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _path(v: str, allowed: tuple[str, ...] = ()) -> str:
    """A path relative to base_url: requests never leave the configured origin, so credentials do not
    either."""
    if not v.startswith("/") or v.startswith("//"):
        raise ValueError("a path starts with a single '/' and is relative to base_url")
    if "#" in v:
        raise ValueError("a path has no fragment (#)")
    for placeholder in PLACEHOLDER.findall(v):
        if placeholder not in allowed:
            names = " or ".join(allowed) or "none"
            raise ValueError(f"unknown placeholder {placeholder} (allowed here: {names})")
    return v


def _one_key_path(v: str) -> str:
    """A path that names the key once: `/members/{key}`."""
    _path(v, (KEY,))
    if v.count(KEY) != 1:
        raise ValueError(f"the path names {KEY} once, e.g. /members/{KEY}")
    return v


def _dotted(v: str | None) -> str | None:
    if v is not None and not DOTTED.match(v):
        raise ValueError("a path into the answer is field names joined by '.', e.g. data.items")
    return v


def _header(v: str) -> str:
    if not HEADER.match(v):
        raise ValueError("not a valid HTTP header name")
    return v


def _nonempty(v: SecretStr) -> SecretStr:
    if not v.get_secret_value():
        raise ValueError("is empty (is its environment variable set?)")
    return v


def is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url(v: str, what: str) -> str:
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} is an absolute http(s) URL")
    if parts.username is not None or parts.password is not None:
        # Userinfo would travel into logs and error messages with the URL; auth has a place of its own.
        raise ValueError(f"{what} carries no credentials; configure them under auth")
    if parts.fragment:
        raise ValueError(f"{what} has no fragment (#)")
    return v


# --- auth ------------------------------------------------------------------------------------------


class NoAuth(_Strict):
    kind: Literal["none"] = "none"


class BearerAuth(_Strict):
    """`Authorization: Bearer <token>`."""

    kind: Literal["bearer"]
    token: SecretStr

    _token = field_validator("token")(_nonempty)


class ApiKeyAuth(_Strict):
    """The key in a header of its own, e.g. `X-API-Key: <key>`."""

    kind: Literal["api_key"]
    header: str = "X-API-Key"
    key: SecretStr

    _key = field_validator("key")(_nonempty)
    _header_name = field_validator("header")(_header)


class BasicAuth(_Strict):
    """HTTP Basic: `Authorization: Basic base64(username:password)`."""

    kind: Literal["basic"]
    username: str = Field(min_length=1)
    password: SecretStr

    _password = field_validator("password")(_nonempty)

    @field_validator("username")
    @classmethod
    def _no_colon(cls, v: str) -> str:
        if ":" in v:
            raise ValueError("a Basic-auth user name has no ':'")
        return v


class OAuth2Auth(_Strict):
    """OAuth2 client credentials (RFC 6749 section 4.4): a token from `token_url`, cached until shortly
    before it expires, fetched again when the API answers 401."""

    kind: Literal["oauth2"]
    token_url: str
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    scope: str | None = None
    # Extra form fields of the token request some providers want (e.g. `audience`).
    params: dict[str, str] = Field(default_factory=dict)
    # basic: client id and secret in an Authorization header (RFC 6749 says servers must support it);
    # body: as form fields (client_secret_post), for providers that only take that.
    client_auth: Literal["basic", "body"] = "basic"
    # A token is renewed this long before `expires_in` runs out (at most half its lifetime), so a
    # request never leaves with a token that expires on the way.
    refresh_before_seconds: float = Field(30.0, ge=0, le=3600)

    _secret = field_validator("client_secret")(_nonempty)

    @field_validator("token_url")
    @classmethod
    def _token_url(cls, v: str) -> str:
        return _url(v, "token_url")


Auth = Annotated[NoAuth | BearerAuth | ApiKeyAuth | BasicAuth | OAuth2Auth, Field(discriminator="kind")]


# --- reading profiles ------------------------------------------------------------------------------


class ByKey(_Strict):
    """One request per key: `GET /members/{key}`; 404 means the system does not know the key."""

    path: str
    record: str | None = None  # where the record is in the answer (default: the whole body)

    _one_key = field_validator("path")(_one_key_path)

    _record = field_validator("record")(_dotted)


class Pagination(_Strict):
    """How a batch answer continues. next_link: a URL at `next` in the body; link_header: the
    `Link: <...>; rel="next"` header; page: a page-number parameter `param` counting from `start`;
    cursor: the value at `next` in the body sent back as parameter `param`. Parameters go in the query
    of a GET and in the JSON body of a POST; links are followed with GET."""

    style: Literal["next_link", "link_header", "page", "cursor"]
    next: str | None = None
    param: str | None = None
    start: int = Field(1, ge=0)
    # Ask for pages of `size` (as parameter `size_param`); a shorter page is then known to be the last.
    size_param: str | None = None
    size: int | None = Field(None, ge=1, le=10_000)
    # A guard against an answer that never ends (or a loop of links): more pages is an error.
    max_pages: int = Field(10, ge=1, le=1000)

    _next = field_validator("next")(_dotted)

    @model_validator(mode="after")
    def _complete(self) -> Pagination:
        needs = {
            "next_link": ("next",),
            "link_header": (),
            "page": ("param",),
            "cursor": ("next", "param"),
        }[self.style]
        for name in needs:
            if getattr(self, name) is None:
                raise ValueError(f"pagination style {self.style} needs {name}")
        if (self.size_param is None) != (self.size is None):
            raise ValueError("give size_param and size together")
        return self


class Batch(_Strict):
    """Many keys in one request. GET: `{keys}` in the path or query is replaced by the keys joined by
    `separator` (`/members?ids={keys}`). POST: a JSON `body` in which the string "{keys}" stands for
    the list of keys (`{"emails": "{keys}"}`). Each record in the answer's `records` list is matched
    to its key by `key_field`."""

    method: Literal["GET", "POST"] = "GET"
    path: str
    body: dict[str, Any] | None = None
    separator: str = Field(",", min_length=1, max_length=5)
    records: str | None = None  # where the list of records is in the answer (default: the whole body)
    key_field: str
    max_batch: int = Field(50, ge=1, le=1000)  # more keys are split into several requests
    pagination: Pagination | None = None

    _records = field_validator("records")(_dotted)
    _key_field = field_validator("key_field")(_dotted)

    @model_validator(mode="after")
    def _keys_once(self) -> Batch:
        if self.method == "GET":
            _path(self.path, (KEYS,))
            if self.body is not None:
                raise ValueError("a GET batch has no body; put {keys} in the path")
            if self.path.count(KEYS) != 1:
                raise ValueError(f"a GET batch names {KEYS} once in its path, e.g. /members?ids={KEYS}")
        else:
            _path(self.path)
            if self.body is None or _count_keys(self.body) != 1:
                raise ValueError(f'a POST batch has a body naming "{KEYS}" once, e.g. {{ids: "{KEYS}"}}')
        return self


def _count_keys(node: Any) -> int:
    if node == KEYS:
        return 1
    if isinstance(node, dict):
        return sum(_count_keys(v) for v in node.values())
    if isinstance(node, list):
        return sum(_count_keys(v) for v in node)
    return 0


class Fetch(_Strict):
    """The profile source: by key, in batches, or both (a batch endpoint is then used for every read)."""

    by_key: ByKey | None = None
    batch: Batch | None = None
    # ignore_case: a record's key matches whatever its case (emails, for instance).
    key_match: Literal["exact", "ignore_case"] = "exact"

    @model_validator(mode="after")
    def _some(self) -> Fetch:
        if self.by_key is None and self.batch is None:
            raise ValueError("give by_key, batch or both")
        return self


# --- events, health and resilience -----------------------------------------------------------------


class Events(_Strict):
    """Events are POSTed as structured CloudEvents, the event id in the idempotency header."""

    path: str = "/events"
    idempotency_header: str = "Idempotency-Key"

    @field_validator("path")
    @classmethod
    def _plain(cls, v: str) -> str:
        return _path(v)

    _header_name = field_validator("idempotency_header")(_header)


class PrivacyCall(_Strict):
    """One call of a privacy request: `{key}` in the path is the customer's key in this system (the
    mapping's `key:`), URL-encoded."""

    method: Literal["GET", "POST", "PUT", "DELETE"]
    path: str
    record: str | None = None  # an export: where the system's data is in the answer (default: all of it)

    _one_key = field_validator("path")(_one_key_path)

    _record = field_validator("record")(_dotted)


class Privacy(_Strict):
    """GDPR requests (the hub's port PrivacyHandler). `erase`: e.g. `DELETE /members/{key}`: 2xx, 404 or
    410 is done. `export`: e.g. `GET /members/{key}/export`: a 2xx JSON answer is the system's part of the
    export (at `record`), 404 is nothing. A 5xx, 408, 429 or no answer is retried by the hub's bus;
    another 4xx fails the receipt for good. Each call carries `idempotency_header`: the request's id
    and the system's name. Without this section, or without one of the two, the system answers that
    kind of request NOT_SUPPORTED."""

    erase: PrivacyCall | None = None
    export: PrivacyCall | None = None
    idempotency_header: str = "Idempotency-Key"

    _header_name = field_validator("idempotency_header")(_header)

    @field_validator("erase", mode="before")
    @classmethod
    def _erase_default(cls, v: Any) -> Any:
        return {"method": "DELETE", **v} if isinstance(v, dict) else v

    @field_validator("export", mode="before")
    @classmethod
    def _export_default(cls, v: Any) -> Any:
        return {"method": "GET", **v} if isinstance(v, dict) else v

    @model_validator(mode="after")
    def _some(self) -> Privacy:
        if self.erase is None and self.export is None:
            raise ValueError("give erase, export or both")
        return self


class Retry(_Strict):
    """Connect errors, timeouts, 5xx and 429 are tried again within the system's time budget, after
    an exponential back-off with full jitter (or the Retry-After the system asks for)."""

    attempts: Annotated[int, Field(ge=1, le=10)] = 3  # tries in all, the first one included
    backoff_seconds: Annotated[float, Field(gt=0, le=60)] = 0.1  # the first back-off's upper bound
    max_backoff_seconds: Annotated[float, Field(gt=0, le=300)] = 2.0


class RateLimit(_Strict):
    """A token bucket: `per_second` requests on average, up to `burst` at once."""

    per_second: float = Field(gt=0, le=10_000)
    burst: int = Field(1, ge=1, le=10_000)


class Breaker(_Strict):
    """Opens after `failures` consecutive failures (connect errors, timeouts, 5xx); while open every
    call fails at once; after `cooldown_seconds` one trial call decides whether it closes again."""

    failures: Annotated[int, Field(ge=1, le=1000)] = 5
    cooldown_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0


class RestConfig(AdapterConfig):
    base_url: str
    auth: Auth = NoAuth()
    headers: dict[str, str] = Field(default_factory=dict)  # sent with every request; not for secrets
    fetch: Fetch | None = None
    events: Events | None = None
    privacy: Privacy | None = None  # GDPR erasure and export; NOT_SUPPORTED without it
    # Health: GET this path, up when 2xx. Without one, GET base_url: up on any answer below 500 (an
    # API's root often answers 404 or 401, which still shows it is there).
    health_path: str | None = None
    # One request's bound; the system's timeout_seconds bounds a whole read (all its tries).
    request_timeout_seconds: float | None = Field(None, gt=0, le=60)
    retry: Retry = Retry()
    rate_limit: RateLimit | None = None
    breaker: Breaker | None = Breaker()  # null turns it off
    max_concurrency: int = Field(8, ge=1, le=256)  # requests in flight to the system at once
    verify_tls: bool = True
    # Credentials over plain http are refused except to this machine, unless this says the network
    # is trusted.
    allow_insecure_http: bool = False

    @field_validator("base_url")
    @classmethod
    def _base(cls, v: str) -> str:
        _url(v, "base_url")
        if urlsplit(v).query:
            raise ValueError("base_url has no query; put parameters in the paths")
        return v

    @field_validator("health_path")
    @classmethod
    def _health(cls, v: str | None) -> str | None:
        return None if v is None else _path(v)

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            _header(name)
            if name.lower() in ("authorization", "content-type", "content-length", "host"):
                raise ValueError(f"header {name} is set by the adapter (credentials go under auth)")
        return v

    @model_validator(mode="after")
    def _coherent(self) -> RestConfig:
        if self.fetch is None and self.events is None and self.privacy is None:
            raise ValueError(
                "configure fetch (a profile source), events (an event destination), privacy, or several"
            )
        if self.auth.kind != "none" and not self.allow_insecure_http:
            urls = [self.base_url]
            if isinstance(self.auth, OAuth2Auth):
                urls.append(self.auth.token_url)
            for url in urls:
                parts = urlsplit(url)
                if parts.scheme == "http" and not is_loopback(parts.hostname):
                    raise ValueError(
                        "credentials would travel over plain http: use https, or set "
                        "allow_insecure_http: true for a trusted network"
                    )
        return self
