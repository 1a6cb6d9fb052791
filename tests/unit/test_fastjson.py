"""scimsync.fastjson encodes SCIM responses and write batches: the same JSON as the standard
library's, for every value a stored document can hold (RFC 8259; RFC 7644 §3.1 bodies are JSON)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from scimsync import fastjson

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(st.characters(exclude_categories=["Cs"]), max_size=6), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
@settings(max_examples=300, deadline=None)
def test_what_is_written_reads_back_as_the_same_value(value):
    """Integers of any size included: an IdP's extension may send 2**70, which orjson refuses."""
    assert json.loads(fastjson.dumps(value)) == value
    assert fastjson.dumps_text(value) == fastjson.dumps(value).decode()


def test_integers_beyond_64_bits_are_written_exactly():
    doc = {"urn:example:ext": {"big": 123456789012345678901234567890, "neg": -(2**70)}}
    assert fastjson.dumps(doc) == b'{"urn:example:ext":{"big":123456789012345678901234567890,"neg":-1180591620717411303424}}'


def test_text_is_utf8_not_escaped():
    assert fastjson.dumps({"displayName": "Zoë 😀 \u2028"}) == '{"displayName":"Zoë 😀 \u2028"}'.encode()
