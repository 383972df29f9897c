# SPDX-License-Identifier: Apache-2.0
"""A minimal OCI distribution uploader for images skopeo would recompress.

Hand-written (about 40 lines of urllib) because skopeo always compresses
uncompressed layers for a registry destination, and the harness must not
depend on the product's own registry client, which is under test.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING

from tests.harness._proc import ServiceError

if TYPE_CHECKING:
    from tests.harness.images import BuiltImage


def upload_image(image: BuiltImage, base_url: str, repo: str, tag: str) -> str:
    """Upload every blob (monolithic POST + PUT), then the manifest; return its digest."""
    manifest = image.manifest_bytes
    for digest in (image.config_digest, *(layer.digest for layer in image.layers)):
        if _request("HEAD", f"{base_url}/v2/{repo}/blobs/{digest}", ok=(200, 404))[0] == 200:
            continue
        _, headers = _request("POST", f"{base_url}/v2/{repo}/blobs/uploads/", ok=(202,))
        location = urllib.parse.urljoin(base_url, headers["Location"])
        sep = "&" if "?" in location else "?"
        _request(
            "PUT",
            f"{location}{sep}digest={urllib.parse.quote(digest)}",
            ok=(201,),
            body=image.blob(digest).read_bytes(),
            content_type="application/octet-stream",
        )
    _, headers = _request(
        "PUT",
        f"{base_url}/v2/{repo}/manifests/{tag}",
        ok=(201,),
        body=manifest,
        content_type="application/vnd.oci.image.manifest.v1+json",
    )
    return headers["Docker-Content-Digest"]


def _request(
    method: str,
    url: str,
    *,
    ok: tuple[int, ...],
    body: bytes | None = None,
    content_type: str | None = None,
) -> tuple[int, dict[str, str]]:
    req = urllib.request.Request(url, data=body, method=method)  # noqa: S310 - 127.0.0.1 only
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310
            status, headers = resp.status, dict(resp.headers)
    except urllib.error.HTTPError as e:
        status, headers = e.code, dict(e.headers)
    if status not in ok:
        raise ServiceError(f"{method} {url} answered {status}, expected one of {ok}")
    return status, headers
