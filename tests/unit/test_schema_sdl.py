"""schema/schema.graphql is the published contract: it must equal what the code exports."""

from hub.api.schema import schema
from hub.cli import SDL_PATH


def test_checked_in_sdl_matches_the_code():
    exported = schema.as_str() + "\n"
    assert SDL_PATH.read_text(encoding="utf-8") == exported, "schema drifted: run `make schema` and commit it"


def test_contract_names_channels_code_against():
    sdl = SDL_PATH.read_text(encoding="utf-8")
    for name in (
        "startContact(input: StartContactInput!): StartContactPayload!",
        "recordContactEvents(contactId: ID!, events: [ContactEventInput!]!): RecordContactEventsPayload!",
        "endContact(contactId: ID!, outcome: String = null): Contact!",
        "customer(id: ID!): Customer",
        "offers: [Offer!]!",
        "nextBestActions(customerId: ID!, channel: Channel = null, limit: Int! = 3): [NextBestAction!]!",
    ):
        assert name in sdl, name
