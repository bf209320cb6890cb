"""Who may do what: the scope each GraphQL operation and each protected field needs, in one table.

Default deny: every root field (query, mutation, subscription) must have an entry, or the schema does
not build (hub.api.guard). Other fields are open to whoever may reach them, unless listed here (personal
data: `customer:read:pii`). A new operation is one entry below; the SDL shows it as
`@requiresScopes(scopes: [["<scope>"]])` (the directive Apollo Federation uses for the same purpose).
"""

from __future__ import annotations

CONTACT_WRITE = "contact:write"
CUSTOMER_READ = "customer:read"
CUSTOMER_READ_PII = "customer:read:pii"
CAMPAIGN_READ = "campaign:read"
CAMPAIGN_WRITE = "campaign:write"
REQUEST_WRITE = "request:write"
OPERATIONS_READ = "operations:read"
OPERATIONS_WRITE = "operations:write"
REPORTS_READ = "reports:read"  # the marketing reports: funnel, campaign results, segments, requests
PRIVACY_WRITE = "privacy:write"
# Not an operation's scope: a capability of startContact (attach a key to a customer another key
# already identifies; hub.core.contacts).
IDENTITY_MERGE = "identity:merge"
# Not a scope either (no key can hold it): a rule for a field any authenticated caller may read; the SDL
# shows it as federation's `@authenticated` (hub.api.federation: Query._service).
AUTHENTICATED = "(authenticated)"

ALL_SCOPES = frozenset(
    {
        CONTACT_WRITE,
        CUSTOMER_READ,
        CUSTOMER_READ_PII,
        CAMPAIGN_READ,
        CAMPAIGN_WRITE,
        REQUEST_WRITE,
        OPERATIONS_READ,
        OPERATIONS_WRITE,
        REPORTS_READ,
        PRIVACY_WRITE,
        IDENTITY_MERGE,
    }
)

# "Type.field" (GraphQL names) -> the scope it needs.
RULES: dict[str, str] = {
    # queries
    "Query.customer": CUSTOMER_READ,
    "Query.customers": CUSTOMER_READ,
    "Query.customerByKey": CUSTOMER_READ,
    "Query.request": CUSTOMER_READ,
    "Query.offers": CUSTOMER_READ,
    "Query.lead": CAMPAIGN_READ,
    "Query.campaign": CAMPAIGN_READ,
    "Query.callbacks": CAMPAIGN_READ,
    "Query.operations": OPERATIONS_READ,
    "Query.flows": OPERATIONS_READ,
    "Query.auditLog": OPERATIONS_READ,
    "Query.deadLetters": OPERATIONS_READ,
    "Query.funnel": REPORTS_READ,
    "Query.campaignResults": REPORTS_READ,
    "Query.segmentSizes": REPORTS_READ,
    "Query.requestCounts": REPORTS_READ,
    "Query.privacyRequest": PRIVACY_WRITE,
    # the Apollo Federation subgraph's (hub.api.federation says why)
    "Query._entities": CUSTOMER_READ,
    "Query._service": AUTHENTICATED,
    # mutations
    "Mutation.startContact": CONTACT_WRITE,
    "Mutation.recordContactEvents": CONTACT_WRITE,
    "Mutation.endContact": CONTACT_WRITE,
    "Mutation.submitRequest": CONTACT_WRITE,
    "Mutation.recordLeadResponse": CONTACT_WRITE,
    "Mutation.updateRequestStatus": REQUEST_WRITE,
    "Mutation.launchCampaign": CAMPAIGN_WRITE,
    "Mutation.eraseCustomer": PRIVACY_WRITE,
    "Mutation.exportCustomer": PRIVACY_WRITE,
    "Mutation.setConsent": PRIVACY_WRITE,
    "Mutation.replayDeadLetters": OPERATIONS_WRITE,
    "Mutation.runFlow": OPERATIONS_WRITE,
    # subscriptions
    "Subscription.nextBestActions": CUSTOMER_READ,
    # personal data inside the types above
    "Customer.emails": CUSTOMER_READ_PII,
    "Customer.phones": CUSTOMER_READ_PII,
    "Customer.addresses": CUSTOMER_READ_PII,
}


def parse_scopes(text: str) -> frozenset[str]:
    """`a,b c` -> {a, b, c}; an unknown scope is refused (a typo must not grant nothing silently)."""
    scopes = frozenset(s for s in text.replace(",", " ").split() if s)
    unknown = sorted(scopes - ALL_SCOPES)
    if unknown:
        raise ValueError(f"unknown scope(s): {', '.join(unknown)}; known: {', '.join(sorted(ALL_SCOPES))}")
    return scopes
