"""Personal identifiers in a team's columns: what the loop never stores, whatever a schema says.

A team's export (and so its schema, or a HighLevel location's field map) may name any column,
including a contact's name, e-mail, phone or street address. Those are never model inputs worth
keeping (training drops them as identifiers) and they are the data a record of scored leads
must not hold. Two checks, both applied to every value a snapshot would keep:

- **by column name**: ``name``, ``first_name``, ``Full Name``, ``contact_name``, ``email``,
  ``e-mail``, ``phone``, ``mobile``, ``telephone``, ``address``, ``address1``, ``street``,
  ``street_address`` ... (the name normalised to lower case words joined by ``_`` and judged by
  its last words: ``email_domain``, ``stage_name`` and ``campaign_name`` are kept);
- **by value shape**, for a column whose name says nothing: an e-mail address, a phone number
  (``+15555550123``, ``(555) 555-0123``, ``555-555-0123``; a plain number such as a price or an
  epoch-millisecond date is not one) or a street address (``1 Main St``).

An e-mail's domain is not personal (``gmail.com`` says something about a lead, not who it is):
`derived_values` keeps it as a derived column ``<column>_domain`` where the address itself is
dropped. Numbers, booleans and missing values are never personal by shape.
"""

from __future__ import annotations

import re
from typing import Any

_WORD = re.compile(r"[^a-z0-9]+")
#: the last word (or two) of a column name that make it a personal identifier
_PERSONAL_TAILS = frozenset({
    "firstname", "first_name", "lastname", "last_name", "fullname", "full_name",
    "email", "e_mail", "mail_address", "email_address", "phone", "phone_number", "mobile",
    "mobile_number", "cell", "telephone", "tel", "address", "address1", "address_1",
    "address2", "address_2", "address_line_1", "address_line_2", "street", "street_address",
})
_EMAIL = re.compile(r"^[^\s@\"'<>,;]+@([^\s@\"'<>,;]+\.[^\s@\"'<>,;]+)$")
_PHONE_CHARS = re.compile(r"^\+?[\d\s().\-/]+$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_STREET = re.compile(
    r"^\d+[a-z]?\s+(\w+\s+){0,4}(st|street|ave|avenue|rd|road|blvd|boulevard|ln|lane|dr|drive|"
    r"way|ct|court|pl|place|ter|terrace|hwy|highway|pkwy|parkway|cir|circle|sq|square)\b\.?",
    re.I)
#: ``<who>_name`` names a person; ``stage_name`` or ``campaign_name`` do not
_PERSON_WORDS = frozenset({"contact", "lead", "client", "customer", "person", "buyer", "seller",
                           "owner", "agent", "spouse", "user", "display", "given", "family",
                           "middle", "maiden", "nick", "legal"})
DOMAIN_SUFFIX = "_domain"


def column_words(name: str) -> str:
    """``"Full Name"`` -> ``"full_name"``, ``"contact.email"`` -> ``"contact_email"``."""
    return _WORD.sub("_", name.strip().lower()).strip("_")


def is_personal_column(name: str) -> bool:
    """A column whose name says it holds a name, e-mail, phone or street address."""
    words = column_words(name)
    if not words:
        return False
    parts = words.split("_")
    if parts[-1] == "name" and (len(parts) == 1 or parts[-2] in _PERSON_WORDS):
        return True
    tails = {parts[-1], "_".join(parts[-2:]), "_".join(parts[-3:]), "_".join(parts[-4:])}
    return bool(tails & _PERSONAL_TAILS)


def email_domain(value: Any) -> str | None:
    """The domain of an e-mail address (lower case), None when the value is not one."""
    if not isinstance(value, str):
        return None
    found = _EMAIL.match(value.strip())
    return found.group(1).lower() if found else None


def _looks_like_phone(text: str) -> bool:
    if not _PHONE_CHARS.match(text) or _ISO_DATE.match(text):
        return False
    digits = sum(ch.isdigit() for ch in text)
    if not 7 <= digits <= 15:
        return False
    if text.startswith("+"):
        return True
    try:
        float(text)  # a plain number (a price, an epoch) is not a phone number
        return False
    except ValueError:
        return any(ch in text for ch in " ()-./")


def is_personal_value(value: Any) -> bool:
    """Text shaped like an e-mail address, a phone number or a street address."""
    if not isinstance(value, str):
        return False
    text = value.strip()
    if not text:
        return False
    return (email_domain(text) is not None or _looks_like_phone(text)
            or bool(_STREET.match(text)))


def derived_values(column: str, value: Any) -> dict[str, Any]:
    """What may be kept of one column's value: ``{column: value}`` when it is not personal,
    ``{column + "_domain": domain}`` for an e-mail address (by name or by shape), ``{}`` for
    anything else personal."""
    domain = email_domain(value)
    if domain is not None:
        base = column_words(column) or "email"
        return {base if base.endswith(DOMAIN_SUFFIX) else base + DOMAIN_SUFFIX: domain}
    if is_personal_column(column) or is_personal_value(value):
        return {}
    return {column: value}
