# SPDX-License-Identifier: Apache-2.0
"""Checks shared by both bundle paths: base64 strictness and message signatures.

DSSE envelopes are not checked here: their signature and statement are
:class:`attestor.verify.Verifier`'s job alone.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from pydantic import ValidationError

from attestor.digests import Sha256Hex
from attestor.dsse import b64decode_strict
from attestor.errors import InvalidInput, VerificationError
from attestor.verify._crypto import PublicKey, verify_signature

__all__ = [
    "check_base64",
    "reason",
    "verify_message_signature",
]


# protobuf-JSON ``bytes`` members of a bundle. sigstore-models decodes them
# leniently (junk characters dropped), so we insist on canonical base64 first.
_BYTES_MEMBERS = frozenset(
    {
        "rawBytes",
        "keyId",
        "rootHash",
        "hashes",
        "canonicalizedBody",
        "signedEntryTimestamp",
        "signedTimestamp",
        "signature",
        "digest",
        "payload",
        "sig",
    }
)


def check_base64(node: object, cap: int, name: str = "bundle") -> None:
    """Every bytes member of a bundle document must be canonical base64.

    Raises:
        VerificationError: naming the first malformed member.
    """
    if isinstance(node, dict):
        for member, value in node.items():
            if member in _BYTES_MEMBERS and isinstance(value, str | list):
                for item in value if isinstance(value, list) else [value]:
                    if isinstance(item, str):
                        try:
                            b64decode_strict(item, field=f"{name}.{member}", max_bytes=cap)
                        except InvalidInput as e:
                            raise VerificationError(f"malformed bundle: {e.message}") from None
            else:
                check_base64(value, cap, f"{name}.{member}"[-120:])
    elif isinstance(node, list):
        for item in node:
            check_base64(item, cap, name)


def reason(e: BaseException) -> str:
    """One-line rejection reason from a library exception."""
    if isinstance(e, ValidationError):
        errors = e.errors()
        if errors:
            where = ".".join(str(p) for p in errors[0].get("loc", ()))
            return f"malformed bundle: {where}: {errors[0].get('msg', 'invalid')}"[:300]
    text = " ".join(str(a) for a in e.args) if e.args else type(e).__name__
    return text.replace("\n", " ")[:300]


def verify_message_signature(
    key: PublicKey, signature: bytes, sha256: Sha256Hex, data: bytes | None
) -> None:
    """Raises: VerificationError: if the signature over the artifact does not verify."""
    if data is not None:
        ok = verify_signature(key, signature, data)
    else:
        ok = _verify_prehashed_sha256(key, signature, bytes.fromhex(sha256))
    if not ok:
        raise VerificationError("message signature does not verify with the given key")


def _verify_prehashed_sha256(key: PublicKey, signature: bytes, digest: bytes) -> bool:
    # Written here because _crypto.verify_signature takes the message, and a
    # `sha256:<hex>` artifact gives us only its digest. P-256 and RSA sign the
    # sha256 pre-hash, so the digest suffices; Ed25519 and other curves do not.
    prehashed = Prehashed(hashes.SHA256())
    try:
        if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
            key.verify(signature, digest, ec.ECDSA(prehashed))
            return True
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, digest, padding.PKCS1v15(), prehashed)
            return True
    except (InvalidSignature, ValueError):
        return False
    raise VerificationError(
        f"a {type(key).__name__} message signature needs the artifact, not only its digest"
    )
