# SPDX-License-Identifier: Apache-2.0
"""Helpers for keyless signing: one DSSE signature and the identity token check.

Used by :mod:`attestor.keyless.signer`. Signing talks to Fulcio and Rekor
through sigstore-python; the result is a plain JSON document, the Sigstore
bundle v0.3 (Fulcio certificate + one Rekor entry). Reading parts back out of
it needs no network and lives in :mod:`attestor.signing.keyless_bundle`.
"""

from __future__ import annotations

import json
from typing import Any

from sigstore.dsse import Statement
from sigstore.errors import Error as SigstoreError
from sigstore.oidc import IdentityToken
from sigstore.sign import SigningContext

from attestor.errors import ConfigError, InvalidInput, UpstreamError

__all__ = ["parse_identity_token", "sign_dsse_bundle"]


def parse_identity_token(raw: str) -> IdentityToken:
    """Parse an OIDC identity token the way Fulcio will judge it.

    Checks the claims sigstore-python requires (``aud: sigstore``, ``iss``,
    ``sub``, ``iat``, ``exp``) and the validity period; the signature is for
    Fulcio to check. The message never contains the token.

    Raises:
        ConfigError: one line saying what is wrong with the token.
    """
    try:
        return IdentityToken(raw.strip())
    except SigstoreError as e:
        cause = e.__cause__
        detail = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
        raise ConfigError(f"identity token unusable: {e}{detail}".replace("\n", " ")) from None


def sign_dsse_bundle(context: SigningContext, token: str, statement: bytes) -> dict[str, Any]:
    """Keyless-sign an in-toto statement as DSSE; return the Sigstore bundle JSON.

    Each call uses a fresh ephemeral P-256 key and its own Fulcio certificate.

    Args:
        context: built from a ClientTrustConfig (Fulcio, Rekor, trusted root).
        token: the raw OIDC identity token (JWT).
        statement: the serialized in-toto statement, signed verbatim.

    Raises:
        ConfigError: if the token is malformed or expired.
        InvalidInput: if ``statement`` is not an in-toto statement.
        UpstreamError: if Fulcio, the CT log check or Rekor fail.
    """
    identity = parse_identity_token(token)
    try:
        payload = Statement(statement)
    except SigstoreError as e:
        raise InvalidInput(str(e).splitlines()[0][:300]) from None
    try:
        # cache=True on purpose: with cache=False sigstore-python 4.5.1 draws a new
        # key on every read of Signer._private_key, so the CSR and the DSSE
        # signature use different keys and Rekor (which checks the signature
        # against the certificate) refuses the entry. A Signer per call still
        # means one key and one certificate per signature.
        with context.signer(identity, cache=True) as signer:
            bundle = signer.sign_dsse(payload)
    except Exception as e:  # noqa: BLE001
        # sigstore-python's clients raise unrelated classes (FulcioClientError,
        # RekorClientError, ExpiredIdentity, requests' errors): no common base.
        # FulcioClientError often has no message; its cause (the HTTP error) says why.
        text = str(e) or str(e.__cause__ or "")
        first = text.splitlines()[0] if text else "no detail"
        raise UpstreamError(f"keyless signing failed: {type(e).__name__}: {first}"[:300]) from e
    doc: dict[str, Any] = json.loads(bundle.to_json())
    return doc
