import pytest

from hub.core.errors import BadInput
from hub.core.identity import Key, keys_from, normalize_email, normalize_phone
from hub.model import KeyKind


def test_emails_match_case_and_whitespace_insensitively():
    assert normalize_email("  Anna.DeVries@Example.COM ") == "anna.devries@example.com"
    assert normalize_email("a @b.nl") == "a@b.nl"


@pytest.mark.parametrize("raw", ["", "anna", "@example.com", "anna@", "anna@example", "anna@.com"])
def test_bad_emails_are_refused(raw):
    with pytest.raises(BadInput):
        normalize_email(raw)


def test_phones_become_e164_with_the_default_region():
    assert normalize_phone("06 1234 5678", "NL") == "+31612345678"
    assert normalize_phone("+31 (0)6-12345678", "NL") == "+31612345678"
    assert normalize_phone("+1 650 253 0000", "NL") == "+16502530000"
    with pytest.raises(BadInput):
        normalize_phone("12", "NL")


def test_keys_from_all_kinds():
    keys = keys_from(email="A@B.nl", phone="0612345678", customer_id=" C-1 ", cookie_id="ck", region="NL")
    assert keys == [Key(KeyKind.EMAIL, "a@b.nl"), Key(KeyKind.PHONE, "+31612345678"),
                    Key(KeyKind.CUSTOMER_ID, "C-1"), Key(KeyKind.COOKIE_ID, "ck")]
    assert keys_from() == []
