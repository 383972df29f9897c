# SPDX-License-Identifier: Apache-2.0
"""Signing keys: key files, signer URIs and keyids.

A key is configured as a *signer URI*. A plain path or a ``file://`` URI names
a PKCS#8 PEM private key on disk, loaded into securesystemslib's
``CryptoSigner``. Any other scheme (``gcpkms:``, ``awskms:``, ``hsm:``, ...)
is dispatched through securesystemslib's ``SIGNER_FOR_URI_SCHEME``, so KMS and
HSM keys plug in without changes here; those need the public key up front.

Private key files are mode 0600 in a 0700 directory, created with ``O_EXCL``
so that no other process ever sees a partial or more permissive file.
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse, urlsplit

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from securesystemslib.signer import (  # type: ignore[attr-defined]  # no __all__ upstream
    SIGNER_FOR_URI_SCHEME,
    CryptoSigner,
    Signer,
    SSlibKey,
)

from attestor.digests import KeyId
from attestor.errors import ConfigError, InvalidInput
from attestor.verify.keys import key_algorithm, load_public_key

__all__ = [
    "ALGORITHMS",
    "PublicKeyInfo",
    "generate_key_file",
    "import_private_key_pem",
    "import_signer_uri",
    "load_signer",
    "public_key_info",
    "signer_public_key_info",
    "sslib_key",
]

#: Algorithms we sign with. Not P-384: sigstore-js verifies ECDSA with SHA-256
#: whatever the curve, while securesystemslib signs P-384 with SHA-384.
ALGORITHMS = frozenset({"ecdsa-p256", "ed25519"})
_MAX_PRIVATE_PEM_BYTES = 16 * 1024
_MAX_SIGNER_URI_CHARS = 2048


@dataclass(frozen=True)
class PublicKeyInfo:
    """What ``GET /v1/keys`` publishes about a key."""

    #: securesystemslib keyid: sha256 of the canonical JSON of {keytype, scheme, keyval}.
    keyid: KeyId
    #: ``ecdsa-p256`` | ``ed25519``.
    algorithm: str
    #: SubjectPublicKeyInfo PEM (the cosign.pub format).
    public_key_pem: str


def sslib_key(pem: bytes | str) -> SSlibKey:
    """The securesystemslib key (with its default keyid) for a public key PEM.

    Raises:
        InvalidInput: if the PEM is not a public key of an algorithm we sign with.
    """
    key = load_public_key(pem)
    algorithm = key_algorithm(key)
    if algorithm not in ALGORITHMS:
        raise InvalidInput(f"signing keys must be one of {sorted(ALGORITHMS)}, got {algorithm}")
    return SSlibKey.from_crypto(key)


def public_key_info(pem: bytes | str) -> PublicKeyInfo:
    """Keyid, algorithm and SPKI PEM of a public key.

    Raises:
        InvalidInput: if the PEM is not a public key of an algorithm we sign with.
    """
    key = load_public_key(pem)
    algorithm = key_algorithm(key)
    if algorithm not in ALGORITHMS:
        raise InvalidInput(f"signing keys must be one of {sorted(ALGORITHMS)}, got {algorithm}")
    spki = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")
    return PublicKeyInfo(
        keyid=KeyId(SSlibKey.from_crypto(key).keyid), algorithm=algorithm, public_key_pem=spki
    )


def _ensure_private_dir(directory: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkdir's mode is filtered by the umask and ignored for an existing directory.
    os.chmod(directory, 0o700)


def _write_private_file(directory: Path, name: str, data: bytes) -> Path:
    """Write ``data`` to ``directory/name`` as 0600, atomically, never overwriting.

    The bytes go to a temp file opened with O_EXCL|O_NOFOLLOW and mode 0600 from
    the start; ``os.link`` then publishes it under its final name, failing if that
    name exists, so readers see either nothing or the whole key.
    """
    final = directory / name
    tmp = directory / f".{name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask may only remove bits; make it exact
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, final)
        except FileExistsError:
            raise InvalidInput(f"key file {final} already exists") from None
    finally:
        tmp.unlink(missing_ok=True)
    return final


def _store(
    directory: Path, private_key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
) -> tuple[str, PublicKeyInfo]:
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    info = public_key_info(public_pem)
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _ensure_private_dir(directory)
    path = _write_private_file(directory, f"{info.keyid}.pem", private_pem)
    return path.resolve().as_uri(), info


def generate_key_file(directory: Path, algorithm: str = "ecdsa-p256") -> tuple[str, PublicKeyInfo]:
    """Generate a key pair and store the private key as ``directory/<keyid>.pem``.

    Returns:
        The signer URI (``file://...``) and the public key's info.

    Raises:
        InvalidInput: for an unknown ``algorithm``.
        OSError: if the directory or file cannot be created.
    """
    private_key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    if algorithm == "ecdsa-p256":
        private_key = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "ed25519":
        private_key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise InvalidInput(f"algorithm must be one of {sorted(ALGORITHMS)}, got {algorithm!r}")
    return _store(directory, private_key)


def _load_private_pem(
    pem: bytes, password: bytes | None
) -> ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey:
    if len(pem) > _MAX_PRIVATE_PEM_BYTES:
        raise InvalidInput(f"private key PEM over {_MAX_PRIVATE_PEM_BYTES} bytes")
    try:
        key = serialization.load_pem_private_key(pem, password=password)
    except TypeError as e:  # password given for a clear key, or missing for an encrypted one
        raise InvalidInput(f"private key password: {e}") from None
    except (ValueError, UnsupportedAlgorithm):
        # cryptography's message can quote key material; keep it out of logs.
        raise InvalidInput("not a PEM private key (or wrong password)") from None
    if isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        # Checks the curve against ALGORITHMS.
        public_key_info(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return key
    raise InvalidInput(
        f"signing keys must be one of {sorted(ALGORITHMS)}, got {type(key).__name__}"
    )


def import_private_key_pem(
    directory: Path, pem: bytes, password: bytes | None = None
) -> tuple[str, PublicKeyInfo]:
    """Import a PEM private key (PKCS#8 or traditional, optionally encrypted).

    The key is stored decrypted as PKCS#8 in a 0600 file, like a generated one.

    Returns:
        The signer URI (``file://...``) and the public key's info.

    Raises:
        InvalidInput: if the PEM is not a private key of an accepted algorithm,
            the password is wrong, or a file for this key already exists.
        OSError: if the directory or file cannot be created.
    """
    return _store(directory, _load_private_pem(bytes(pem), password))


def _path_of(uri: str) -> Path | None:
    """The key file a plain path or ``file://`` URI names; ``None`` for other schemes."""
    if uri.startswith("file://"):
        parsed = urlparse(uri)
        if parsed.netloc not in ("", "localhost"):
            raise ConfigError(f"signer URI {uri!r}: file URIs must be local")
        return Path(unquote(parsed.path))
    if "://" in uri or (":" in uri and not uri.startswith(("/", "."))):
        scheme = uri.split(":", 1)[0]
        # A scheme securesystemslib knows; else a relative path that has a colon.
        if scheme in SIGNER_FOR_URI_SCHEME:
            return None
    return Path(uri)


def _read_key_file(path: Path) -> bytes:
    # O_NONBLOCK and the cap: a FIFO or /dev/zero named by a URI must not hang
    # or exhaust the process; only a regular file can be a key.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ConfigError(f"signer key file {path}: not a regular file")
        return f.read(_MAX_PRIVATE_PEM_BYTES + 1)


def load_signer(uri: str, *, public_key: SSlibKey | None = None) -> Signer:
    """Load the signer a signer URI names.

    Args:
        uri: a path or ``file://`` URI of a PEM private key, or any URI whose
            scheme is in securesystemslib's ``SIGNER_FOR_URI_SCHEME``.
        public_key: the key's public half; required for non-file schemes.

    Raises:
        ConfigError: if the key cannot be read or loaded, or a non-file URI
            comes without its public key.
    """
    path = _path_of(uri)
    if path is None:
        if public_key is None:
            raise ConfigError(f"signer URI {uri.split(':', 1)[0]}: needs its public key")
        try:
            return Signer.from_priv_key_uri(uri, public_key)
        except Exception as e:  # plugins raise anything; report, don't leak
            raise ConfigError(f"signer URI {uri!r}: {type(e).__name__}: {e}") from e
    try:
        pem = _read_key_file(path)
    except OSError as e:
        raise ConfigError(f"signer key file {path}: {e.strerror}") from None
    try:
        private_key = _load_private_pem(pem, None)
    except InvalidInput as e:
        raise ConfigError(f"signer key file {path}: {e.message}") from None
    return CryptoSigner(private_key, SSlibKey.from_crypto(private_key.public_key()))


def signer_public_key_info(signer: Signer) -> PublicKeyInfo:
    """The :class:`PublicKeyInfo` of a loaded signer (file, KMS or HSM).

    Raises:
        InvalidInput: if the signer's key is not of an algorithm we sign with.
    """
    public = signer.public_key
    keyval = public.keyval.get("public", "")
    if public.keytype == "ed25519":
        # securesystemslib keeps Ed25519 keys as raw hex, not PEM.
        try:
            raw = ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(keyval))
        except ValueError:
            raise InvalidInput("signer has a malformed Ed25519 public key") from None
        keyval = raw.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")
    return public_key_info(keyval)


def import_signer_uri(uri: str, public_key_pem: str | None = None) -> tuple[str, PublicKeyInfo]:
    """Check that an existing signer URI loads and signs; return it with its public key.

    Nothing is written: the private key stays where the URI names it. A
    ``file:///abs/path.pem`` URI (an unencrypted PEM private key) gives its public
    key itself; any other scheme of ``SIGNER_FOR_URI_SCHEME`` (KMS, HSM, Vault)
    needs ``public_key_pem``, as :func:`load_signer` does. A probe signature,
    verified with that public key, proves the URI holds the matching private key.

    Returns:
        The URI, unchanged, and the public key's info.

    Raises:
        InvalidInput: a plain path, a relative or remote file URI, an unknown
            scheme, a signer that cannot be loaded, a key of another algorithm,
            or a public key that does not match the signer.
    """
    if len(uri) > _MAX_SIGNER_URI_CHARS:
        raise InvalidInput(f"signer_uri over {_MAX_SIGNER_URI_CHARS} characters")
    parts = urlsplit(uri)
    if parts.scheme == "file":
        # load_signer reads "file:rel" as a relative path: only an absolute local
        # URI means the same file on every replica that mounts it.
        if not uri.startswith("file://") or parts.netloc not in ("", "localhost"):
            raise InvalidInput("signer_uri: a file URI must be file:///absolute/path.pem")
    elif parts.scheme not in SIGNER_FOR_URI_SCHEME:
        raise InvalidInput(
            "signer_uri must be file:///absolute/path.pem or use one of the schemes "
            f"{sorted(SIGNER_FOR_URI_SCHEME)}"
        )
    elif public_key_pem is None:
        raise InvalidInput(f"signer_uri {parts.scheme}: give its public_key_pem")
    expected = sslib_key(public_key_pem) if public_key_pem is not None else None
    try:
        signer = load_signer(uri, public_key=expected)
    except ConfigError as e:
        raise InvalidInput(f"signer_uri cannot be loaded: {e.message}") from None
    info = signer_public_key_info(signer)
    if expected is not None and info.keyid != expected.keyid:
        raise InvalidInput("signer_uri: the key file does not match public_key_pem")
    _probe(signer, sslib_key(info.public_key_pem), parts.scheme)
    return uri, info


def _probe(signer: Signer, public_key: SSlibKey, scheme: str) -> None:
    payload = b"attestor signer probe " + secrets.token_bytes(16)
    try:
        public_key.verify_signature(signer.sign(payload), payload)
    except Exception as e:  # signer plugins raise anything; name it, don't leak
        raise InvalidInput(
            f"signer_uri {scheme}: cannot sign with the key of public_key_pem ({type(e).__name__})"
        ) from None
