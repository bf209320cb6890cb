"""Errors a caller can act on. Each has a stable code that the API puts in `extensions.code`."""

from __future__ import annotations


class HubError(Exception):
    code = "INTERNAL"

    def __init__(self, message: str, **details: object):
        super().__init__(message)
        self.message = message
        self.details = details

    @property
    def extensions(self) -> dict[str, object]:
        # graphql-core copies an original error's `extensions` onto the GraphQL error.
        return {"code": self.code, **self.details}


class BadInput(HubError):
    code = "BAD_USER_INPUT"


class NotFound(HubError):
    code = "NOT_FOUND"


class UnknownContact(NotFound):
    code = "UNKNOWN_CONTACT"


class ContactEnded(HubError):
    code = "CONTACT_ENDED"


class UnknownOffer(BadInput):
    code = "UNKNOWN_OFFER"


class TooManyEvents(BadInput):
    code = "TOO_MANY_EVENTS"


class SystemUnavailable(HubError):
    code = "SYSTEM_UNAVAILABLE"


class UnknownRequest(NotFound):
    code = "UNKNOWN_REQUEST"


class InvalidTransition(HubError):
    code = "INVALID_TRANSITION"


class NotConfigured(HubError):
    """The mapping gives no system the role this operation needs."""

    code = "NOT_CONFIGURED"


class Unauthenticated(HubError):
    """No credential, or one the hub does not accept (HTTP 401; websocket close 4401)."""

    code = "UNAUTHENTICATED"


class Forbidden(HubError):
    """The caller's credential lacks the scope, or is bound to another channel."""

    code = "FORBIDDEN"


class RateLimited(HubError):
    code = "RATE_LIMITED"


class TooManySubscriptions(HubError):
    code = "TOO_MANY_SUBSCRIPTIONS"


class UnknownCustomer(BadInput):
    """A customer id (golden id) given to identify a visitor that names no customer."""

    code = "UNKNOWN_CUSTOMER"
