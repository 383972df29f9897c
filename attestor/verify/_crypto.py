# SPDX-License-Identifier: Apache-2.0
"""Public-key loading and raw signature checks: the verification core's crypto.

This uses ``cryptography`` directly rather than securesystemslib: this is the
hot path of every verification, and securesystemslib's ``Envelope.verify``
requires the signature keyid to equal the key's keyid, which cosign ignores
(and so must we: the keyid is an unauthenticated hint).

Supported keys and the default scheme each one implies:

* ECDSA P-256 (SHA-256), P-384 (SHA-384), P-521 (SHA-512); DER (ASN.1) signatures,
  as cosign and the Sigstore clients write them.
* Ed25519 (pure, no pre-hash).
* RSA >= 2048 bits: PKCS#1 v1.5 or PSS (salt length auto-detected), SHA-256
  unless ``hash_alg`` says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from attestor.errors import InvalidInput

__all__ = [
    "PublicKey",
    "key_algorithm",
    "load_public_key",
    "public_key_pem",
    "signature_checker",
    "verify_signature",
]

#: The public key types the verifier accepts.
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey

_MIN_RSA_BITS = 2048
_MAX_PEM_BYTES = 16 * 1024

_CURVES: dict[str, tuple[str, type[hashes.HashAlgorithm]]] = {
    "secp256r1": ("ecdsa-p256", hashes.SHA256),
    "secp384r1": ("ecdsa-p384", hashes.SHA384),
    "secp521r1": ("ecdsa-p521", hashes.SHA512),
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def load_public_key(pem: bytes | str) -> PublicKey:
    """Load a SubjectPublicKeyInfo PEM (the cosign.pub format).

    Raises:
        InvalidInput: if it is not a PEM public key, or its type, curve or size is
            not accepted (RSA below 2048 bits, curves other than P-256/384/521).
    """
    data = pem.encode("utf-8") if isinstance(pem, str) else bytes(pem)
    if len(data) > _MAX_PEM_BYTES:
        raise InvalidInput(f"public key PEM over {_MAX_PEM_BYTES} bytes")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise InvalidInput(f"not a PEM public key: {e}") from None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _CURVES:
            raise InvalidInput(f"unsupported ECDSA curve {key.curve.name}")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < _MIN_RSA_BITS:
            raise InvalidInput(f"RSA key of {key.key_size} bits, at least {_MIN_RSA_BITS} needed")
        return key
    raise InvalidInput(f"unsupported public key type {type(key).__name__}")


def key_algorithm(key: PublicKey) -> str:
    """``ecdsa-p256`` | ``ecdsa-p384`` | ``ecdsa-p521`` | ``ed25519`` | ``rsa-<bits>``.

    Raises:
        InvalidInput: for a key type :func:`load_public_key` would refuse.
    """
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _CURVES:
            raise InvalidInput(f"unsupported ECDSA curve {key.curve.name}")
        return _CURVES[key.curve.name][0]
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key, rsa.RSAPublicKey):
        return f"rsa-{key.key_size}"
    raise InvalidInput(f"unsupported public key type {type(key).__name__}")


def public_key_pem(key: PublicKey) -> str:
    """SubjectPublicKeyInfo PEM of ``key`` (cosign.pub format)."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


# Built once: each verify would otherwise construct a hash and an ECDSA object.
_ECDSA_BY_CURVE = {name: ec.ECDSA(h()) for name, (_, h) in _CURVES.items()}
_ECDSA_BY_HASH = {name: ec.ECDSA(h()) for name, h in _HASHES.items()}


def _ecdsa(key: ec.EllipticCurvePublicKey, hash_alg: str | None) -> ec.ECDSA:
    if hash_alg is None:
        return _ECDSA_BY_CURVE[key.curve.name]
    if hash_alg not in _ECDSA_BY_HASH:
        raise InvalidInput(f"unsupported hash algorithm {hash_alg!r}")
    return _ECDSA_BY_HASH[hash_alg]


def _hash(key: PublicKey, hash_alg: str | None) -> hashes.HashAlgorithm:
    if hash_alg is not None:
        if hash_alg not in _HASHES:
            raise InvalidInput(f"unsupported hash algorithm {hash_alg!r}")
        return _HASHES[hash_alg]()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return _CURVES[key.curve.name][1]()
    return hashes.SHA256()


def verify_signature(
    key: PublicKey, signature: bytes, data: bytes, *, hash_alg: str | None = None
) -> bool:
    """Whether ``signature`` over ``data`` verifies with ``key``.

    A bad signature is ``False``, never an exception: callers decide how to fail.
    ``hash_alg`` (``sha256``/``sha384``/``sha512``) overrides the key's default
    hash for ECDSA and RSA; Ed25519 ignores it (pure Ed25519 has no pre-hash).

    Raises:
        InvalidInput: if ``hash_alg`` is not supported or the key type is unknown.
    """
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, _ecdsa(key, hash_alg))
            return True
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
            return True
        if isinstance(key, rsa.RSAPublicKey):
            return _verify_rsa(key, signature, data, _hash(key, hash_alg))
    except InvalidSignature:
        return False
    except ValueError:
        # cryptography raises ValueError for undecodable DER (e.g. garbage sigs).
        return False
    raise InvalidInput(f"unsupported public key type {type(key).__name__}")


def _verify_rsa(
    key: rsa.RSAPublicKey, signature: bytes, data: bytes, digest: hashes.HashAlgorithm
) -> bool:
    # Sigstore/cosign RSA keys sign with PKCS#1 v1.5; securesystemslib defaults to
    # PSS. Accept either: both are sound schemes over the same key.
    try:
        key.verify(signature, data, padding.PKCS1v15(), digest)
        return True
    except InvalidSignature:
        pass
    try:
        key.verify(
            signature,
            data,
            padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.AUTO),
            digest,
        )
        return True
    except InvalidSignature:
        return False


def signature_checker(key: PublicKey) -> Callable[[bytes, bytes], bool]:
    """``check(signature, data)``: :func:`verify_signature` with the key's default hash.

    The key type and its algorithm object are resolved here, once per key,
    instead of on every verification (isinstance against cryptography's ABCs
    and the curve look-up cost ~1 us per signature). The answers are those of
    :func:`verify_signature`: ``False`` for a bad or undecodable signature.

    Raises:
        InvalidInput: if the key type or its curve is not supported.
    """
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _ECDSA_BY_CURVE:
            raise InvalidInput(f"unsupported ECDSA curve {key.curve.name}")
        return _checker(key.verify, _ECDSA_BY_CURVE[key.curve.name])
    if isinstance(key, ed25519.Ed25519PublicKey):
        return _checker(key.verify)
    if isinstance(key, rsa.RSAPublicKey):
        digest = _hash(key, None)
        return lambda signature, data: _verify_rsa(key, signature, data, digest)
    raise InvalidInput(f"unsupported public key type {type(key).__name__}")


def _checker(verify: Callable[..., None], *algorithm: ec.ECDSA) -> Callable[[bytes, bytes], bool]:
    def check(signature: bytes, data: bytes) -> bool:
        try:
            verify(signature, data, *algorithm)
        except (InvalidSignature, ValueError):  # ValueError: undecodable DER
            return False
        return True

    return check
