# SPDX-License-Identifier: Apache-2.0
"""Trusted public keys, loaded once, handed to the :class:`~attestor.verify.Verifier`.

Also the public face of the PEM helpers other packages need: the signer checks
its own key with :func:`load_public_key` and names it with :func:`key_algorithm`,
so that signing and verification agree on which keys and algorithms exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined]  # no __all__ upstream

from attestor.errors import InvalidInput
from attestor.verify._crypto import (
    PublicKey,
    key_algorithm,
    load_public_key,
    signature_checker,
)

__all__ = ["PublicKey", "TrustedKey", "key_algorithm", "load_public_key"]


@dataclass(frozen=True)
class TrustedKey:
    """A public key the verifier trusts; ``keyid`` is only used as a lookup hint."""

    keyid: str
    public_key: PublicKey
    algorithm: str
    #: ``check(signature, data) -> bool`` with this key (built once, see
    #: ``signature_checker``).
    check: Callable[[bytes, bytes], bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Refuse key objects the verifier cannot use.

        Raises:
            InvalidInput: if ``public_key`` is not an ECDSA (P-256, P-384,
                P-521), Ed25519 or RSA key.
        """
        if not isinstance(
            self.public_key,
            ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey,
        ):
            raise InvalidInput(f"unsupported public key type {type(self.public_key).__name__}")
        object.__setattr__(self, "check", signature_checker(self.public_key))

    @classmethod
    def from_pem(cls, pem: bytes | str, keyid: str | None = None) -> TrustedKey:
        """Load a SubjectPublicKeyInfo PEM (cosign.pub).

        Args:
            pem: the public key.
            keyid: its id; by default the securesystemslib keyid (what we sign with).

        Raises:
            InvalidInput: if the PEM is not an accepted public key.
        """
        key = load_public_key(pem)
        if keyid is None:
            keyid = SSlibKey.from_crypto(key).keyid
        return cls(keyid=keyid, public_key=key, algorithm=key_algorithm(key))
