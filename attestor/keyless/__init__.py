# SPDX-License-Identifier: Apache-2.0
"""Keyless signing adapter: Fulcio certificates, Rekor entries, OIDC identity tokens.

This package does network I/O (Fulcio, Rekor, a TSA) and reads ambient
credentials, so it sits beside :mod:`attestor.registry` and
:mod:`attestor.store`, outside the I/O-free core. Reading a finished bundle
back (its envelope, its certificate) needs no network: those readers live in
:mod:`attestor.signing.keyless_bundle` and are re-exported here for callers.
"""

from attestor.keyless._sign import parse_identity_token, sign_dsse_bundle
from attestor.keyless.signer import (
    AmbientToken,
    EnvToken,
    FileToken,
    KeylessConfig,
    KeylessSigner,
    TokenSource,
    check_config,
    load_trust_config,
)
from attestor.signing.keyless_bundle import dsse_envelope, signing_certificate_pem

__all__ = [
    "AmbientToken",
    "EnvToken",
    "FileToken",
    "KeylessConfig",
    "KeylessSigner",
    "TokenSource",
    "check_config",
    "dsse_envelope",
    "load_trust_config",
    "parse_identity_token",
    "sign_dsse_bundle",
    "signing_certificate_pem",
]
