# SPDX-License-Identifier: Apache-2.0
"""OCI distribution client: resolve images, fetch verified blobs, push artifacts.

Decisions:

* A manifest the caller named that the registry does not have is ``NotFound``.
  A blob or platform manifest that a verified manifest references but the
  registry lacks is ``UpstreamError`` ("registry is missing blob X"): the
  registry is inconsistent, not the caller wrong.
* Bytes whose sha256 or size differ from the digest we asked for are
  ``UpstreamError`` (the registry served something else), with ``expected`` and
  ``actual`` in the detail.
* A manifest that parses but is not a container image (artifact config, odd
  layer types) is ``InvalidInput``; caps are ``TooLarge``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path

import requests
import urllib3.exceptions

from attestor.digests import Digest, parse_digest, sha256_digest
from attestor.errors import InvalidInput, NotFound, TooLarge, UpstreamError, VerificationError
from attestor.registry import media_types as mt
from attestor.registry._connect import Deadline
from attestor.registry._hosts import HostRules
from attestor.registry._http import Transport
from attestor.registry._parse import (
    Descriptor,
    loads_strict,
    manifest_media_type,
    parse_config,
    parse_image_manifest,
    select_platform,
)
from attestor.registry.auth import Credentials
from attestor.registry.cache import BlobCache
from attestor.registry.models import RegistryLimits, ResolvedImage
from attestor.registry.reference import ImageReference

__all__ = ["RegistryClient"]


def _pull(ref: ImageReference) -> str:
    return f"repository:{ref.repository}:pull"


def _push(ref: ImageReference) -> str:
    return f"repository:{ref.repository}:pull,push"


def _mismatch(host: str, what: str, expected: str, actual: str) -> UpstreamError:
    return UpstreamError(
        f"registry {host} served {what} with digest {actual}, expected {expected}",
        detail={"registry": host, "expected": expected, "actual": actual},
    )


def _registry_says(resp: requests.Response, limit: int) -> str:
    """The first error code/message of a distribution-spec error body, if any."""
    try:
        body = resp.raw.read(limit, decode_content=True)
        errors = loads_strict(body, "error").get("errors")
        first = errors[0] if isinstance(errors, list) and errors else {}
        return f": {first.get('code', '')} {str(first.get('message', ''))[:200]}"
    except (InvalidInput, OSError, AttributeError, ValueError, urllib3.exceptions.HTTPError):
        return ""


class RegistryClient:
    """Talks to OCI registries over HTTPS (HTTP only for ``insecure_registries``).

    A registry may redirect us, or name a token realm, only on its own host, a
    host ``registry_admitted`` accepts (the policies' registries), a host in
    ``blob_hosts`` / ``auth_hosts``, or a host reached at public addresses.
    Every exchange has a total deadline (``limits``) besides the per-read
    ``timeout``.
    """

    def __init__(
        self,
        *,
        insecure_registries: frozenset[str],
        credentials: Mapping[str, Credentials] | None = None,
        cache: BlobCache,
        limits: RegistryLimits = RegistryLimits(),  # noqa: B008 - frozen value
        timeout: float = 30.0,
        registry_admitted: Callable[[str], bool] | None = None,
        blob_hosts: frozenset[str] = frozenset(),
        auth_hosts: frozenset[str] = frozenset(),
        session: requests.Session | None = None,
    ) -> None:
        self._cache = cache
        self._limits = limits
        # Weak values: a lock lives only while a download of its digest runs, so a
        # client that serves a worker for its whole life does not grow per blob.
        self._locks: weakref.WeakValueDictionary[str, threading.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._locks_guard = threading.Lock()
        hosts = HostRules(
            registry_admitted=registry_admitted or (lambda _host: False),
            blob_hosts=frozenset(h.lower() for h in blob_hosts),
            auth_hosts=frozenset(h.lower() for h in auth_hosts),
        )
        self._http = Transport(
            insecure_registries=insecure_registries,
            credentials=credentials or {},
            timeout=timeout,
            max_redirects=limits.max_redirects,
            max_token_bytes=limits.max_token_bytes,
            token_deadline_s=limits.request_deadline_s,
            hosts=hosts,
            session=session,
        )

    # -- the seam for readers of further endpoints (``attach_read``) -------------

    @property
    def limits(self) -> RegistryLimits:
        """The byte, count and time caps this client enforces."""
        return self._limits

    @property
    def transport(self) -> Transport:
        """The host-checked HTTP transport every request of this client goes through.

        Readers of endpoints the client itself does not wrap (tags that may be
        absent, the referrers API) send through it so that the same host rules,
        credentials and redirect checks apply.
        """
        return self._http

    def deadline(self) -> Deadline:
        """The total deadline of one manifest, config, token or push exchange."""
        return Deadline(self._limits.request_deadline_s)

    # -- reading ---------------------------------------------------------------

    def resolve(self, ref: ImageReference, *, platform: str = "linux/amd64") -> ResolvedImage:
        """Fetch and verify the image manifest (via its index if any) and config.

        Raises:
            InvalidInput: no tag or digest, not an image, malformed documents,
                or an index without ``platform``.
            TooLarge: manifest, config or layer count above the limits.
            NotFound: the registry has no such manifest.
            UpstreamError: unreachable, timeout, 5xx, auth refused, digest
                mismatch, or a referenced manifest/config missing.
        """
        ident = ref.digest or ref.tag
        if ident is None:
            raise InvalidInput(f"image reference {ref} has neither tag nor digest")
        body, content_type, header_digest = self._get_manifest(ref, ident, missing=NotFound)
        digest = sha256_digest(body)
        expected = ref.digest or header_digest
        if expected is not None and expected != digest:
            raise _mismatch(ref.registry, f"manifest {ref}", expected, digest)
        doc = loads_strict(body, f"manifest {digest}")
        media_type = manifest_media_type(doc, content_type)
        index_digest: Digest | None = None
        chosen: str | None = None
        if media_type in mt.INDEX_MEDIA_TYPES:
            index_digest, chosen = digest, platform
            desc = select_platform(doc, platform)
            body, content_type, _ = self._get_manifest(ref, desc.digest, missing=UpstreamError)
            self._check(ref.registry, f"manifest {desc.digest}", body, desc)
            digest = desc.digest
            doc = loads_strict(body, f"manifest {digest}")
            media_type = manifest_media_type(doc, content_type)
            if media_type in mt.INDEX_MEDIA_TYPES:
                raise InvalidInput(f"index {index_digest} nests another index; not supported")
        config_desc, layers = parse_image_manifest(doc, self._limits)
        config = self._get_config(ref, config_desc)
        return ResolvedImage(
            reference=ref,
            manifest_digest=digest,
            media_type=media_type,
            manifest=body,
            config_digest=config_desc.digest,
            config=config,
            image_config=parse_config(config, len(layers)),
            layers=layers,
            index_digest=index_digest,
            platform=chosen,
        )

    def fetch_blob(self, ref: ImageReference, digest: str, *, expected_size: int) -> Path:
        """The path of blob ``digest`` in the cache, downloading it only if absent.

        The blob is verified (sha256 and size) while it streams, before it
        becomes visible in the cache.

        Raises:
            InvalidInput: ``digest`` is not ``sha256:<hex>``.
            TooLarge: ``expected_size`` or the stream exceeds ``max_blob_bytes``.
            UpstreamError: unreachable, timeout, 5xx, the registry lacks the
                blob, or it served other bytes than ``digest``.
        """
        parse_digest(digest)
        if expected_size > self._limits.max_blob_bytes:
            raise TooLarge(
                f"blob {digest} has {expected_size} bytes, the cap is {self._limits.max_blob_bytes}"
            )
        cached = self._cache.path_for(digest, expected_size=expected_size)
        if cached is not None:
            return cached
        # Concurrent requests for one layer in this process download it once.
        with self._locks_guard:
            lock = self._locks.setdefault(digest, threading.Lock())
        with lock:
            cached = self._cache.path_for(digest, expected_size=expected_size)
            if cached is not None:
                return cached
            return self._download(ref, digest, expected_size)

    def _download(self, ref: ImageReference, digest: str, expected_size: int) -> Path:
        host = ref.registry
        # The declared size sets the deadline; the stream may not exceed it.
        with (
            Deadline(self._limits.blob_deadline_s(expected_size)) as deadline,
            self._http.request(
                "GET", host, f"{ref.repository}/blobs/{digest}", scope=_pull(ref), deadline=deadline
            ) as resp,
        ):
            self._expect_blob(resp, ref, digest)
            try:
                return self._cache.store(
                    digest,
                    self._http.iter_body(
                        resp,
                        host,
                        deadline,
                        min_bytes_per_s=self._limits.blob_min_bytes_per_s,
                        grace_s=self._limits.blob_deadline_floor_s,
                    ),
                    max_size=self._limits.max_blob_bytes,
                    expected_size=expected_size,
                )
            except VerificationError as e:
                raise UpstreamError(
                    f"registry {host} served a wrong blob {digest}: {e.message}",
                    detail={"registry": host, "digest": digest, **e.detail},
                ) from e

    # -- writing ---------------------------------------------------------------

    def push_blob(self, ref: ImageReference, data: bytes) -> Digest:
        """Upload ``data`` (monolithic POST + PUT) unless the registry has it.

        Raises:
            UpstreamError: the registry refused or failed.
        """
        digest = sha256_digest(data)
        host, scope = ref.registry, _push(ref)
        path = f"{ref.repository}/blobs/{digest}"
        with (
            self.deadline() as deadline,
            self._http.request("HEAD", host, path, scope=scope, deadline=deadline) as resp,
        ):
            if resp.status_code == 200:
                return digest
        with (
            self.deadline() as deadline,
            self._http.request(
                "POST", host, f"{ref.repository}/blobs/uploads/", scope=scope, deadline=deadline
            ) as resp,
        ):
            self.expect(resp, {202}, f"starting an upload to {ref.name}", host)
            location = resp.headers.get("Location")
        if not location:
            raise UpstreamError(f"registry {host} gave no upload Location")
        with (
            self.deadline() as deadline,
            self._http.request(
                "PUT",
                host,
                location,
                scope=scope,
                deadline=deadline,
                params={"digest": digest},
                headers={"Content-Type": "application/octet-stream"},
                data=data,
            ) as resp,
        ):
            self.expect(resp, {201}, f"uploading blob {digest} to {ref.name}", host)
        return digest

    def push_manifest(
        self,
        ref: ImageReference,
        manifest_bytes: bytes,
        media_type: str,
        *,
        tag: str | None = None,
    ) -> Digest:
        """PUT a manifest by ``tag`` (or by its digest); returns its digest.

        Raises:
            TooLarge: the manifest exceeds ``max_manifest_bytes``.
            UpstreamError: the registry refused, failed, or stored another digest.
        """
        if len(manifest_bytes) > self._limits.max_manifest_bytes:
            raise TooLarge(f"manifest exceeds {self._limits.max_manifest_bytes} bytes")
        digest = sha256_digest(manifest_bytes)
        with (
            self.deadline() as deadline,
            self._http.request(
                "PUT",
                ref.registry,
                f"{ref.repository}/manifests/{tag or digest}",
                scope=_push(ref),
                deadline=deadline,
                headers={"Content-Type": media_type},
                data=manifest_bytes,
            ) as resp,
        ):
            self.expect(resp, {201}, f"pushing manifest {digest} to {ref.name}", ref.registry)
            stored = resp.headers.get("Docker-Content-Digest")
        if stored is not None and stored != digest:
            raise _mismatch(ref.registry, "a pushed manifest", digest, stored)
        return digest

    # -- helpers ---------------------------------------------------------------

    def _get_manifest(
        self,
        ref: ImageReference,
        ident: str,
        *,
        missing: type[NotFound] | type[UpstreamError],
    ) -> tuple[bytes, str | None, str | None]:
        host, cap = ref.registry, self._limits.max_manifest_bytes
        with (
            self.deadline() as deadline,
            self._http.request(
                "GET",
                host,
                f"{ref.repository}/manifests/{ident}",
                scope=_pull(ref),
                deadline=deadline,
                headers={"Accept": mt.ACCEPT_MANIFESTS},
            ) as resp,
        ):
            if resp.status_code == 404:
                raise missing(f"registry {host} has no manifest {ref.name}:{ident}")
            self.expect(resp, {200}, f"fetching manifest {ref.name}:{ident}", host)
            body = self._http.read_capped(resp, host, cap, deadline)
            if body is None:
                raise TooLarge(f"manifest {ref.name}:{ident} exceeds {cap} bytes")
            return body, resp.headers.get("Content-Type"), resp.headers.get("Docker-Content-Digest")

    def _get_config(self, ref: ImageReference, desc: Descriptor) -> bytes:
        # Content-addressed like layers, so cached like them: re-issuing an image
        # then costs one registry round trip (the manifest) instead of two.
        cap = self._limits.max_config_bytes
        if desc.size <= cap:
            cached = self._cache.path_for(desc.digest, expected_size=desc.size)
            if cached is not None:
                body = cached.read_bytes()
                if sha256_digest(body) == desc.digest:  # re-hashed: at most `cap` bytes
                    return body
        body = self._get_small_blob(ref, desc, cap, "config")
        self._cache.store(desc.digest, (body,), max_size=cap, expected_size=desc.size)
        return body

    def _get_small_blob(self, ref: ImageReference, desc: Descriptor, cap: int, what: str) -> bytes:
        if desc.size > cap:
            raise TooLarge(f"{what} {desc.digest} has {desc.size} bytes, the cap is {cap}")
        host = ref.registry
        with (
            self.deadline() as deadline,
            self._http.request(
                "GET",
                host,
                f"{ref.repository}/blobs/{desc.digest}",
                scope=_pull(ref),
                deadline=deadline,
            ) as resp,
        ):
            self._expect_blob(resp, ref, desc.digest)
            body = self._http.read_capped(resp, host, desc.size, deadline)
        if body is None:
            raise _mismatch(host, f"{what} {desc.digest}", desc.digest, "(longer than its size)")
        self._check(host, f"{what} {desc.digest}", body, desc)
        return body

    def _check(self, host: str, what: str, body: bytes, desc: Descriptor) -> None:
        actual = sha256_digest(body)
        if actual != desc.digest or len(body) != desc.size:
            raise _mismatch(host, what, desc.digest, actual)

    def _expect_blob(self, resp: requests.Response, ref: ImageReference, digest: str) -> None:
        if resp.status_code == 404:
            raise UpstreamError(
                f"registry {ref.registry} is missing blob {digest} of {ref.name}",
                detail={"registry": ref.registry, "digest": digest},
            )
        self.expect(resp, {200}, f"fetching blob {digest}", ref.registry)

    def expect(self, resp: requests.Response, ok: set[int], doing: str, host: str) -> None:
        """Raise unless the registry answered one of the ``ok`` statuses.

        Args:
            resp: the answer.
            ok: the statuses that mean success for this exchange.
            doing: what was being done, for the message ("fetching manifest x:y").
            host: the registry asked; only its own error bodies are quoted.

        Raises:
            UpstreamError: any other status.
        """
        if resp.status_code not in ok:
            # Quote error bodies of the registry only, not of a host it redirected
            # us to: that could be any service the redirect rules let through.
            own = self._http.is_own(host, resp)
            says = _registry_says(resp, self._limits.max_error_bytes) if own else ""
            raise UpstreamError(
                f"registry answered HTTP {resp.status_code} {doing}{says}",
                detail={"status": resp.status_code},
            )
