"""The hub's input types are built by their plan (hub.api.convert) exactly as strawberry builds them:
the same values, nested inputs and lists included, fields left out as their defaults, lists copied."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from strawberry.types.arguments import convert_argument

from hub.api import types
from hub.api.convert import _Builder
from hub.api.schema import schema
from hub.model import Channel

LIST = ["EMAIL", "PRINT"]
VALUES = [
    (types.StartContactInput, {"channel": Channel.WEBSITE, "identification": {"email": "a@example.com"}}),
    (types.StartContactInput, {"channel": Channel.SHOP, "name": "Ann",
                               "identification": {"phone": "+31612345678", "cookieId": "c1", "customerId": None}}),
    (types.ContactEventInput, {"type": types.ContactEventType.PROPOSITION_SHOWN, "offerId": "savings-plus",
                               "occurredAt": datetime(2026, 12, 1, tzinfo=UTC), "decisionId": "dec_1"}),
    (types.LaunchCampaignInput, {"offerId": "savings-plus", "channels": LIST}),
    (types.SystemKeyInput, {"system": "crm", "id": "CRM-1"}),
]


def _strawberry(cls: type, value: dict) -> object:
    definition = cls.__strawberry_definition__
    own, definition.from_input = definition.from_input, None
    try:
        return convert_argument(value, cls, schema.schema_converter.scalar_registry, schema.config)
    finally:
        definition.from_input = own


@pytest.mark.parametrize(("cls", "value"), VALUES)
def test_the_plan_builds_what_strawberry_builds(cls, value):
    assert isinstance(cls.__strawberry_definition__.from_input, _Builder)  # installed by the schema
    planned = convert_argument(value, cls, schema.schema_converter.scalar_registry, schema.config)
    assert planned == _strawberry(cls, value)
    assert type(planned) is cls


def test_a_list_is_copied_not_shared():
    planned = convert_argument({"offerId": "o", "channels": LIST}, types.LaunchCampaignInput,
                               schema.schema_converter.scalar_registry, schema.config)
    assert planned.channels == LIST and planned.channels is not LIST
