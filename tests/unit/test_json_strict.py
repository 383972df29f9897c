# SPDX-License-Identifier: Apache-2.0
"""attestor.json_strict.loads_strict: the one strict parser for untrusted or signed JSON."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attestor.errors import InvalidInput, TooLarge
from attestor.json_strict import loads_strict


def test_parses_bytes_and_str_alike() -> None:
    doc = {"a": [1, 2.5, None, True], "b": {"c": "é"}}
    raw = '{"a": [1, 2.5, null, true], "b": {"c": "é"}}'
    assert loads_strict(raw, what="doc") == doc
    assert loads_strict(raw.encode(), what="doc") == doc


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"a": 1, "a": 2}', "doc: duplicate JSON key 'a'"),
        (b'[{"x": {"k": 1, "k": 1}}]', "doc: duplicate JSON key 'k'"),
        (b'{"a": NaN}', "doc: non-standard JSON constant NaN"),
        (b"[Infinity]", "doc: non-standard JSON constant Infinity"),
        (b"-Infinity", "doc: non-standard JSON constant -Infinity"),
        (b"\xff", "doc: not UTF-8"),
        ('{"a": 1}'.encode("utf-16"), "doc: not UTF-8"),
        (b'\xef\xbb\xbf{"a": 1}', "doc: not JSON"),  # a UTF-8 BOM
        (b"{", "doc: not JSON"),
        (b'{"a": 1} {}', "doc: not JSON"),
        (b"[" * 100_000, "doc: JSON nested too deeply"),
    ],
)
def test_refuses_what_two_parsers_could_read_differently(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        loads_strict(data, what="doc")
    assert info.value.message.startswith(message)
    assert not isinstance(info.value, TooLarge)


def test_integers_only_refuses_fractions_and_exponents() -> None:
    assert loads_strict(b"[1, -2, 30]", what="m", integers_only=True) == [1, -2, 30]
    for number in (b"1.0", b"1e3", b"-0.5"):
        with pytest.raises(InvalidInput, match="m: only integers are allowed"):
            loads_strict(b"[" + number + b"]", what="m", integers_only=True)


def test_size_cap_is_checked_before_parsing() -> None:
    assert loads_strict(b"[1]", what="p", max_bytes=3) == [1]
    with pytest.raises(TooLarge, match=r"^p: 4 bytes, over the limit of 3$"):
        loads_strict(b"{,,}", what="p", max_bytes=3)  # not JSON either: size wins


# The orjson fast path takes compact documents; each must still be refused.
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"a":1,"a":1}', "doc: duplicate JSON key 'a'"),
        (b'[{"x":{"k":1,"k":2}}]', "doc: duplicate JSON key 'k'"),
        (b'{"a":NaN}', "doc: non-standard JSON constant NaN"),
        (b'\xef\xbb\xbf{"a":1}', "doc: not JSON"),
        (b'{"a":1}{}', "doc: not JSON"),
        (b'{"a":"\xff"}', "doc: not UTF-8"),
    ],
)
def test_compact_documents_are_refused_alike(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        loads_strict(data, what="doc")
    assert info.value.message.startswith(message)


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)


def _outcome(data: bytes | str) -> object:
    try:
        return ("ok", loads_strict(data, what="doc"))
    except InvalidInput as e:
        return ("refused", e.message)


@given(value=_JSON_VALUES, ensure_ascii=st.booleans(), duplicate=st.booleans())
@settings(max_examples=400, deadline=None)
def test_fast_path_agrees_with_the_hooks(
    value: object, ensure_ascii: bool, duplicate: bool
) -> None:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=ensure_ascii)
    if duplicate and text.startswith("{") and text != "{}":
        first = text[1 : text.index(",") if "," in text else -1]
        text = "{" + first + "," + text[1:]  # repeat the first member
    # A str takes the hook path only; bytes try orjson first.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return  # a lone surrogate: not representable as UTF-8 bytes
    assert _outcome(text.encode("utf-8")) == _outcome(text)
    if not duplicate:
        assert _outcome(text.encode("utf-8")) == ("ok", json.loads(text))


@given(
    data=st.binary(max_size=40)
    | st.text(alphabet='{}[]":,0123456789-eE.tfalsenu\\ab', max_size=40).map(str.encode)
)
@settings(max_examples=400, deadline=None)
def test_fast_path_agrees_on_arbitrary_bytes(data: bytes) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    if text.startswith("\ufeff"):
        return
    assert _outcome(data) == _outcome(text)
