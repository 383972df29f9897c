# SPDX-License-Identifier: Apache-2.0
"""DSSE envelope model, PAE and a strict parser (pure, no I/O).

Spec: https://github.com/secure-systems-lab/dsse (envelope.md, protocol.md).

Base64 decision: DSSE's envelope.md allows *either* standard or URL-safe
base64, and protobuf-JSON (Sigstore bundles) also accepts both, so the parser
accepts either alphabet (never mixed in one value), with or without ``=``
padding, and rejects everything else: whitespace, stray characters, non-zero
trailing bits (non-canonical encodings). We always *write* standard, padded
base64, which is what cosign writes.

We do not use ``securesystemslib.dsse.Envelope.from_dict`` on caller data: it
empties the dict it is given.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pybase64

from attestor.errors import InvalidInput, TooLarge
from attestor.json_strict import loads_strict

__all__ = [
    "IN_TOTO_PAYLOAD_TYPE",
    "Envelope",
    "EnvelopeLimits",
    "Signature",
    "b64decode_strict",
    "pae",
    "pae_sha256",
    "parse_envelope",
]

#: The payloadType of an in-toto Statement (in-toto attestation spec, envelope.md).
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"

_STD_RE = re.compile(rb"^[A-Za-z0-9+/]*={0,2}$")
_URL_RE = re.compile(rb"^[A-Za-z0-9_-]*={0,2}$")
_ENVELOPE_FIELDS = frozenset({"payloadType", "payload", "signatures"})
_SIGNATURE_FIELDS = frozenset({"keyid", "sig"})


def _json_str(value: str) -> bytes:
    # The same C encoder json.dumps uses with its default ensure_ascii=True.
    return json.encoder.encode_basestring_ascii(value).encode("ascii")


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding.

    ``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body``, lengths in ASCII
    decimal of the *byte* length (protocol.md).
    """
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def pae_sha256(payload_type: str, payload: bytes) -> str:
    """sha256 hex of the PAE: the identity of a signed statement (an attestation).

    This is what every signature of an envelope covers, and nothing else: the
    ``keyid`` hints, the list of signatures and the JSON layout are not signed,
    so anyone can change them without breaking a signature. Revocations,
    "is this one of ours?" look-ups and the agent's matching all identify an
    attestation by this value, never by a hash of the envelope JSON, so that a
    copy with another keyid, an extra or reordered signature, or other
    whitespace is still the same attestation.
    """
    return hashlib.sha256(pae(payload_type, payload)).hexdigest()


@dataclass(frozen=True)
class Signature:
    """One DSSE signature. ``keyid`` is only a hint and is never trusted."""

    keyid: str
    sig: bytes


@dataclass(frozen=True)
class EnvelopeLimits:
    """Caps applied while parsing untrusted envelopes."""

    #: Largest accepted envelope JSON document, in bytes.
    max_document_bytes: int = 8 * 1024 * 1024
    #: Largest decoded payload, in bytes.
    max_payload_bytes: int = 4 * 1024 * 1024
    #: Most signatures accepted in one envelope.
    max_signatures: int = 16
    #: Largest decoded signature (RSA-8192 is 1 KiB; leave room).
    max_signature_bytes: int = 2048
    #: Longest keyid and payloadType strings.
    max_keyid_chars: int = 256
    max_payload_type_chars: int = 256


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope; ``payload`` holds the exact signed bytes."""

    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    def to_dict(self) -> dict[str, Any]:
        """The envelope as cosign writes it (standard, padded base64)."""
        return {
            "payloadType": self.payload_type,
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "signatures": [
                {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode("ascii")}
                for s in self.signatures
            ],
        }

    def to_json(self) -> bytes:
        """Compact JSON of :meth:`to_dict`, UTF-8.

        Byte for byte ``json.dumps(self.to_dict(), separators=(",", ":"))``,
        assembled directly because every verification hashes it: strings go
        through the encoder json.dumps uses, base64 needs no escaping.
        """
        signatures = b",".join(
            b'{"keyid":%b,"sig":"%b"}' % (_json_str(s.keyid), pybase64.b64encode(s.sig))
            for s in self.signatures
        )
        return b'{"payloadType":%b,"payload":"%b","signatures":[%b]}' % (
            _json_str(self.payload_type),
            pybase64.b64encode(self.payload),
            signatures,
        )

    def pae(self) -> bytes:
        """The bytes each signature covers."""
        return pae(self.payload_type, self.payload)

    def pae_sha256(self) -> str:
        """The identity of what this envelope signs (:func:`pae_sha256`)."""
        return pae_sha256(self.payload_type, self.payload)


def b64decode_strict(value: object, *, field: str, max_bytes: int) -> bytes:
    """Decode standard or URL-safe base64 (padding optional), canonical only.

    Raises:
        InvalidInput: if ``value`` is not a string of canonical base64.
        TooLarge: if the decoded value would exceed ``max_bytes``.
    """
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: expected a base64 string, got {type(value).__name__}")
    # 4 chars per 3 bytes; check before decoding so huge inputs cost nothing.
    if len(value) > (max_bytes + 2) // 3 * 4:
        raise TooLarge(f"{field}: over {max_bytes} bytes once decoded")
    try:
        raw = value.encode("ascii")
    except UnicodeEncodeError:
        raise InvalidInput(f"{field}: not base64 (non-ASCII character)") from None
    # Fast path for what we and cosign write (standard, padded, canonical):
    # accepted only if encoding the result gives back the very same string, so
    # it accepts nothing the full checks below would refuse and yields the same
    # bytes. pybase64 (SIMD) decodes and encodes a 2 KiB payload ~6x faster than
    # binascii, which was ~5% of a bulk verification worker's time.
    # Anything else takes the full checks and their precise messages.
    if len(raw) % 4 == 0:
        try:
            decoded = pybase64.b64decode(raw, validate=True)
        except binascii.Error:
            pass
        else:
            if pybase64.b64encode(decoded) == raw:
                if len(decoded) > max_bytes:
                    raise TooLarge(f"{field}: {len(decoded)} bytes, over the cap of {max_bytes}")
                return decoded
    if _STD_RE.match(raw):
        altchars = None
    elif _URL_RE.match(raw):
        altchars = b"-_"
    else:
        raise InvalidInput(f"{field}: not base64 (bad character or mixed alphabets)")
    stripped = raw.rstrip(b"=")
    padded_len = -(-len(stripped) // 4) * 4
    if len(stripped) % 4 == 1 or (raw != stripped and len(raw) != padded_len):
        raise InvalidInput(f"{field}: not base64 (bad length or padding)")
    try:
        decoded = base64.b64decode(
            stripped + b"=" * (padded_len - len(stripped)), altchars=altchars, validate=True
        )
    except binascii.Error as e:
        raise InvalidInput(f"{field}: not base64 ({e})") from None
    # Canonical only: non-zero trailing bits would let two strings mean one value.
    # Only a final partial 3-byte group has such bits, so re-encode just that.
    partial = len(decoded) % 3
    if partial and not stripped.endswith(
        base64.b64encode(decoded[-partial:], altchars=altchars).rstrip(b"=")
    ):
        raise InvalidInput(f"{field}: not canonical base64 (non-zero trailing bits)")
    if len(decoded) > max_bytes:
        raise TooLarge(f"{field}: {len(decoded)} bytes, over the cap of {max_bytes}")
    return decoded


def _load_document(data: bytes | Mapping[str, object], limits: EnvelopeLimits) -> Mapping[str, Any]:
    # Exact-type tests first: isinstance against the Mapping ABC is slow.
    if type(data) is dict or (type(data) is not bytes and isinstance(data, Mapping)):
        return data
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidInput(f"envelope: expected bytes or a mapping, got {type(data).__name__}")
    # The strict loader: a repeated member (two "payload"s, say) could be read
    # differently by another verifier, so it is refused like in a statement.
    doc = loads_strict(bytes(data), what="envelope", max_bytes=limits.max_document_bytes)
    if not isinstance(doc, dict):
        raise InvalidInput(f"envelope: expected a JSON object, got {type(doc).__name__}")
    return doc


def _text(value: object, *, field: str, max_chars: int, allow_empty: bool) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: expected a string, got {type(value).__name__}")
    if not value and not allow_empty:
        raise InvalidInput(f"{field}: must not be empty")
    if len(value) > max_chars:
        raise TooLarge(f"{field}: over {max_chars} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{field}: not valid Unicode (lone surrogate)") from None
    return value


# Standard alphabet characters whose low 4 (resp. 2) bits are zero: the only
# ones canonical before "==" (resp. "=").
_LAST_BEFORE_2_PADS = frozenset("AQgw")
_LAST_BEFORE_1_PAD = frozenset("AEIMQUYcgkosw048")


def _b64_canonical(value: object, max_bytes: int) -> bytes | None:
    """The bytes of canonical standard padded base64 within the cap, else None.

    Accepts a subset of what :func:`b64decode_strict` accepts and gives the
    same bytes: a string whose decoding encodes back to the very same string
    is canonical (checked on the final group, see below). None sends the
    caller to :func:`b64decode_strict`, which decides and words the error.
    """
    if type(value) is not str or len(value) % 4 or len(value) > (max_bytes + 2) // 3 * 4:
        return None
    try:
        decoded = pybase64.b64decode(value, validate=True)
    except ValueError:  # binascii.Error, also for a non-ASCII character
        return None
    if len(decoded) > max_bytes:
        return None
    # A validated decode means standard alphabet and 0-2 final "=", so encoding
    # the result gives back the same string unless the bits the padding leaves
    # unused are set: check those instead of re-encoding everything.
    if value.endswith("=="):
        return decoded if value[-3] in _LAST_BEFORE_2_PADS else None
    if value.endswith("="):
        return decoded if value[-2] in _LAST_BEFORE_1_PAD else None
    return decoded


def _short_ascii(value: object, max_chars: int) -> str | None:
    # Accepts a subset of what _text accepts: an ASCII string always encodes
    # to UTF-8, so the encode check is redundant for it (isascii is O(1)).
    if type(value) is str and len(value) <= max_chars and value.isascii():
        return value
    return None


def parse_envelope(
    data: bytes | Mapping[str, object], *, limits: EnvelopeLimits = EnvelopeLimits()
) -> Envelope:
    """Parse an untrusted DSSE envelope (JSON bytes or an already-decoded mapping).

    Strict: exactly the members ``payloadType``, ``payload`` and ``signatures``
    (each signature ``sig`` and optional ``keyid``), exact JSON types, canonical
    base64 (see the module docstring), at least one signature. The input is
    never mutated. No signature is checked here.

    Raises:
        InvalidInput: on any malformed or unexpected content, with the field.
        TooLarge: when a cap in ``limits`` is exceeded (a subclass of InvalidInput).
    """
    doc = _load_document(data, limits)
    if doc.keys() != _ENVELOPE_FIELDS:  # one set compare on the usual path
        unknown = set(doc) - _ENVELOPE_FIELDS
        if unknown:
            raise InvalidInput(f"envelope: unknown member(s) {sorted(map(str, unknown))[:5]}")
        for name in ("payloadType", "payload", "signatures"):
            if name not in doc:
                raise InvalidInput(f"envelope: missing member {name!r}")
    # Each value first tries a shortcut that accepts only what the full check
    # accepts and gives the same value; the full check runs (and names the
    # field) otherwise. The field names are built only then.
    payload_type = _short_ascii(doc["payloadType"], limits.max_payload_type_chars) or _text(
        doc["payloadType"],
        field="payloadType",
        max_chars=limits.max_payload_type_chars,
        allow_empty=False,
    )
    payload = _b64_canonical(doc["payload"], limits.max_payload_bytes)
    if payload is None:
        payload = b64decode_strict(
            doc["payload"], field="payload", max_bytes=limits.max_payload_bytes
        )
    raw_sigs = doc["signatures"]
    if not isinstance(raw_sigs, list):
        raise InvalidInput(f"signatures: expected a list, got {type(raw_sigs).__name__}")
    if not raw_sigs:
        raise InvalidInput("signatures: at least 1 signature required, got 0")
    if len(raw_sigs) > limits.max_signatures:
        raise TooLarge(f"signatures: at most {limits.max_signatures} allowed, got {len(raw_sigs)}")
    return Envelope(
        payload_type=payload_type,
        payload=payload,
        signatures=tuple(_signature(i, raw, limits) for i, raw in enumerate(raw_sigs)),
    )


def _signature(i: int, raw: object, limits: EnvelopeLimits) -> Signature:
    if type(raw) is not dict and not isinstance(raw, Mapping):
        raise InvalidInput(f"signatures[{i}]: expected an object, got {type(raw).__name__}")
    if not raw.keys() <= _SIGNATURE_FIELDS:
        unknown = set(raw) - _SIGNATURE_FIELDS
        raise InvalidInput(f"signatures[{i}]: unknown member(s) {sorted(map(str, unknown))[:5]}")
    if "sig" not in raw:
        raise InvalidInput(f"signatures[{i}]: missing member 'sig'")
    # keyid is optional in DSSE and cosign writes "" for keyless; absent == "".
    keyid = raw.get("keyid", "")
    if _short_ascii(keyid, limits.max_keyid_chars) is None:
        keyid = _text(
            keyid,
            field=f"signatures[{i}].keyid",
            max_chars=limits.max_keyid_chars,
            allow_empty=True,
        )
    sig = _b64_canonical(raw["sig"], limits.max_signature_bytes)
    if sig is None:
        sig = b64decode_strict(
            raw["sig"], field=f"signatures[{i}].sig", max_bytes=limits.max_signature_bytes
        )
    if not sig:
        raise InvalidInput(f"signatures[{i}].sig: empty signature")
    return Signature(keyid=keyid, sig=sig)
