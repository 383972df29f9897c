# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attestor.errors import InvalidInput
from attestor.registry.reference import ImageReference, parse_reference

HEX = "a" * 64
DIGEST = f"sha256:{HEX}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:5000/app:1.0", ImageReference("127.0.0.1:5000", "app", "1.0", None)),
        ("localhost:5000/a/b/c", ImageReference("localhost:5000", "a/b/c", None, None)),
        ("localhost/app:v", ImageReference("localhost", "app", "v", None)),
        (f"ghcr.io/org/app@{DIGEST}", ImageReference("ghcr.io", "org/app", None, DIGEST)),
        (
            f"registry.example.com:443/x/y_z.w__q-r:t_1.2-3@{DIGEST}",
            ImageReference("registry.example.com:443", "x/y_z.w__q-r", "t_1.2-3", DIGEST),
        ),
        ("[::1]:5000/app:1", ImageReference("[::1]:5000", "app", "1", None)),
        ("Registry.Example.COM/app", ImageReference("registry.example.com", "app", None, None)),
    ],
)
def test_parses_valid_references(value: str, expected: ImageReference) -> None:
    assert parse_reference(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "busybox",
        "library/busybox:latest",  # no implicit docker.io
        "docker/app",  # first component is not a host
        "127.0.0.1:5000",
        "127.0.0.1:5000/",
        "127.0.0.1:5000/App",  # uppercase repository
        "127.0.0.1:5000/app:",
        "127.0.0.1:5000/app:-bad",
        "127.0.0.1:5000/app@sha256:abc",
        f"127.0.0.1:5000/app@sha512:{'a' * 128}",
        f"127.0.0.1:5000/app@sha256:{'A' * 64}",
        "127.0.0.1:99999/app",
        "127.0.0.1:0/app",
        "127.0.0.1:5000/a//b",
        "127.0.0.1:5000/a/",
        "127.0.0.1:5000/a..b",
        " 127.0.0.1:5000/app",
        "127.0.0.1:5000/app:tag with space",
        "-host.com/app",
        "host.com/app:" + "t" * 129,
        "host.com/" + "a" * 250,
        "hést.com/app",
        "https://host.com/app",
    ],
)
def test_rejects_invalid_references(value: str) -> None:
    with pytest.raises(InvalidInput):
        parse_reference(value)


def test_str_round_trips_and_by_digest_pins() -> None:
    ref = parse_reference(f"localhost:5000/org/app:1.0@{DIGEST}")
    assert str(ref) == f"localhost:5000/org/app:1.0@{DIGEST}"
    assert ref.name == "localhost:5000/org/app"
    pinned = parse_reference("localhost:5000/org/app:1.0").by_digest(DIGEST)
    assert pinned == ImageReference("localhost:5000", "org/app", None, DIGEST)
    assert str(pinned) == f"localhost:5000/org/app@{DIGEST}"
    with pytest.raises(InvalidInput):
        ref.by_digest("sha256:zz")


_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
_segment = st.text(alphabet=_ALNUM, min_size=1, max_size=6)
_component = st.builds(
    lambda first, rest: first + "".join(sep + seg for sep, seg in rest),
    _segment,
    st.lists(st.tuples(st.sampled_from([".", "_", "__", "-", "--"]), _segment), max_size=3),
)
_tag = st.builds(
    lambda a, b: a + b,
    st.sampled_from(list(_ALNUM + "_A")),
    st.text(alphabet=_ALNUM + "ABZ_.-", max_size=20),
)


@settings(max_examples=200, deadline=None)
@given(
    host=st.sampled_from(["127.0.0.1:5000", "localhost", "reg.example.com:8443", "[::1]:1"]),
    path=st.lists(_component, min_size=1, max_size=4),
    tag=st.none() | _tag,
    digest=st.none() | st.binary(min_size=32, max_size=32).map(bytes.hex),
)
def test_valid_references_round_trip(
    host: str, path: list[str], tag: str | None, digest: str | None
) -> None:
    value = f"{host}/{'/'.join(path)}"
    value += f":{tag}" if tag else ""
    value += f"@sha256:{digest}" if digest else ""
    ref = parse_reference(value)
    assert str(ref) == value
    assert parse_reference(str(ref)) == ref


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_parses_or_raises_invalid_input(value: str) -> None:
    try:
        ref = parse_reference(value)
    except InvalidInput:
        return
    assert parse_reference(str(ref)) == ref
    assert ref.tag is not None or ref.digest is not None or "/" in value
