# SPDX-License-Identifier: Apache-2.0
"""Sigstore trust material, loaded offline.

Three sources:

* the Sigstore public-good production and staging trusted roots that ship
  inside sigstore-python (:func:`attestor.sigstore_internals.embedded_trust_file`).
  No TUF refresh is ever attempted here: the core does no network I/O
  (STYLE.md rule 3; ``Verifier.production()`` refreshes online);
* custom ``trusted_root.json`` files (private deployments, conformance cases);
* ClientTrustConfig files (a trusted root plus a signing config).

Parsing uses sigstore-models (strict pydantic models of the protobuf-specs,
unknown members forbidden), so a malformed root (e.g. a ``validFor`` without
its required ``start``) is rejected rather than read as "unbounded".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import ValidationError
from sigstore.errors import Error as SigstoreError
from sigstore.models import ClientTrustConfig, TrustedRoot
from sigstore_models.trustroot import v1 as trustroot_v1

from attestor.errors import InvalidInput, TooLarge
from attestor.sigstore_internals import (
    EMBEDDED_INSTANCES,
    client_trust_config_from_model,
    embedded_trust_file,
    trusted_root_from_model,
)

__all__ = [
    "TrustSource",
    "SigstoreTrust",
    "load_client_trust_config",
    "load_trusted_root",
    "public_good",
]

#: Where a trust root came from: a public-good instance or a file we were given.
TrustSource = Literal["production", "staging", "custom"]

_MAX_TRUST_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class SigstoreTrust:
    """A loaded, parsed trusted root (and the signing config when we have one)."""

    source: TrustSource
    #: A label for messages: ``production``, ``staging`` or the file name.
    name: str
    trusted_root: TrustedRoot
    client_trust_config: ClientTrustConfig | None = None


def _parse_trusted_root(data: bytes, name: str) -> TrustedRoot:
    if len(data) > _MAX_TRUST_BYTES:
        raise TooLarge(f"trusted root {name}: {len(data)} bytes, over {_MAX_TRUST_BYTES}")
    try:
        return trusted_root_from_model(trustroot_v1.TrustedRoot.from_json(data))
    except ValidationError as e:
        raise InvalidInput(f"trusted root {name}: {_first_error(e)}") from None
    except (SigstoreError, ValueError) as e:
        raise InvalidInput(f"trusted root {name}: {e}") from None


def _first_error(e: ValidationError) -> str:
    errors = e.errors()
    if not errors:
        return "invalid"
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"{where}: {first.get('msg', 'invalid')}"[:300]


def _read(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > _MAX_TRUST_BYTES:
            raise TooLarge(f"{path}: {size} bytes, over {_MAX_TRUST_BYTES}")
        return path.read_bytes()
    except OSError as e:
        raise InvalidInput(f"cannot read {path}: {e.strerror}") from None


def public_good(instance: Literal["production", "staging"] = "production") -> SigstoreTrust:
    """The public-good trusted root embedded in the installed sigstore-python.

    Offline by design: the embedded copy is as fresh as the sigstore-python
    release. Callers that need a newer root pass a file to
    :func:`load_trusted_root`.

    Raises:
        InvalidInput: if ``instance`` is unknown or the embedded file is missing.
    """
    if instance not in EMBEDDED_INSTANCES:
        raise InvalidInput(f"unknown Sigstore instance {instance!r}")
    try:
        data = embedded_trust_file(instance, "trusted_root.json")
    except (OSError, ModuleNotFoundError) as e:
        raise InvalidInput(f"embedded {instance} trusted root missing: {e}") from None
    return SigstoreTrust(
        source=instance, name=instance, trusted_root=_parse_trusted_root(data, instance)
    )


def load_trusted_root(source: Path | bytes, *, name: str | None = None) -> SigstoreTrust:
    """Load a custom ``trusted_root.json`` (media type ``trustedroot+json;version=0.1``).

    Raises:
        InvalidInput: if the file cannot be read or is not a valid trusted root.
        TooLarge: if it is over 4 MiB.
    """
    data = _read(source) if isinstance(source, Path) else source
    label = name or (source.name if isinstance(source, Path) else "trusted_root.json")
    return SigstoreTrust(source="custom", name=label, trusted_root=_parse_trusted_root(data, label))


def load_client_trust_config(source: Path | bytes, *, name: str | None = None) -> SigstoreTrust:
    """Load a ClientTrustConfig (``clienttrustconfig.v0.1+json``) for a private deployment.

    Both halves are checked now, so a bad config fails at start, not at first use.

    Raises:
        InvalidInput: if it cannot be read, is malformed, or either half is invalid.
    """
    data = _read(source) if isinstance(source, Path) else source
    label = name or (source.name if isinstance(source, Path) else "trust_config.json")
    if len(data) > _MAX_TRUST_BYTES:
        raise TooLarge(f"trust config {label}: {len(data)} bytes, over {_MAX_TRUST_BYTES}")
    try:
        inner = trustroot_v1.ClientTrustConfig.from_json(data)
        if inner.media_type != ClientTrustConfig.ClientTrustConfigType.CONFIG_0_1.value:
            raise InvalidInput(f"trust config {label}: unsupported mediaType {inner.media_type!r}")
        config = client_trust_config_from_model(inner)
        root = config.trusted_root
        config.signing_config  # noqa: B018 - validates the signing half now
    except ValidationError as e:
        raise InvalidInput(f"trust config {label}: {_first_error(e)}") from None
    except (SigstoreError, ValueError) as e:
        raise InvalidInput(f"trust config {label}: {e}") from None
    return SigstoreTrust(source="custom", name=label, trusted_root=root, client_trust_config=config)
