# SPDX-License-Identifier: Apache-2.0
"""Real signed attestation rows for revocation tests, stored through the models.

Envelopes carry our real per-layer SLSA statement, signed by the server's own
keys, so the verification core accepts them in re-verification sweeps.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from attestor.dsse import parse_envelope
from attestor.services import keys as key_service
from attestor.signing.dsse import sign_envelope
from attestor.signing.keys import load_signer, sslib_key
from attestor.statement import ImageInfo, ManifestRef, build_layer_statement, statement_bytes
from attestor.store import signing_keys as key_store
from attestor.store.models import AttestationModel, FileManifestModel, ImageModel

T1 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
T2 = T1 + timedelta(hours=1)
T3 = T1 + timedelta(hours=2)
L1 = "sha256:" + hashlib.sha256(b"layer-1").hexdigest()
L2 = "sha256:" + hashlib.sha256(b"layer-2").hexdigest()
L3 = "sha256:" + hashlib.sha256(b"layer-3").hexdigest()
IMG_A = "sha256:" + hashlib.sha256(b"image-a").hexdigest()
IMG_B = "sha256:" + hashlib.sha256(b"image-b").hexdigest()
MANIFEST = "sha256:" + "e" * 64


@dataclass(frozen=True)
class World:
    """Four attestations over two images and two keys (ids a1..a4)."""

    ids: dict[str, str]
    key: str
    key2: str
    envelope_sha256: dict[str, str]
    #: Each attestation's identity (``attestor.dsse.pae_sha256``).
    pae_sha256: dict[str, str]


def signed_envelope(
    session: Session,
    keyid: str,
    *,
    registry: str,
    image: str,
    layer: str,
    policy: tuple[str, str],
    finished: datetime,
) -> bytes:
    doc = build_layer_statement(
        image=ImageInfo(
            name=f"{registry}/app",
            reference=f"{registry}/app:1",
            manifest_digest=image,
            manifest_media_type="application/vnd.oci.image.manifest.v1+json",
            tag="1",
        ),
        layer_index=0,
        layer_digest=layer,
        layer_media_type="application/vnd.oci.image.layer.v1.tar+gzip",
        diff_id="sha256:" + "d" * 64,
        chain_id="sha256:" + "d" * 64,
        history_entry=None,
        parent=None,
        manifest_ref=ManifestRef(sha256=MANIFEST, tree_digest="sha256:" + "f" * 64, uri="urn:t"),
        policy_id=policy[0],
        policy_version=policy[1],
        builder_id="https://attestor.test/builder",
        invocation_id=f"urn:uuid:{uuid.uuid4()}",
        started_on=finished - timedelta(seconds=1),
        finished_on=finished,
    )
    row = key_store.get_key(session, keyid)
    signer = load_signer(row.signer_uri, public_key=sslib_key(row.public_key_pem))
    return sign_envelope(statement_bytes(doc), signer, keyid=keyid).to_json()


def add_image(session: Session, digest: str, *, registry: str = "127.0.0.1:5000") -> str:
    image_id = str(uuid.uuid4())
    session.add(
        ImageModel(
            id=image_id,
            registry_host=registry,
            repository="app",
            tag="1",
            manifest_digest=digest,
            media_type="application/vnd.oci.image.manifest.v1+json",
            requested_reference=f"{registry}/app:1",
            created_at=T1,
        )
    )
    if session.get(FileManifestModel, MANIFEST) is None:
        session.add(
            FileManifestModel(
                sha256=MANIFEST, tree_digest="sha256:" + "f" * 64, body=b"{}", entry_count=0,
                created_at=T1,
            )
        )  # fmt: skip
    session.flush()
    return image_id


def add_attestation(
    session: Session,
    *,
    image_id: str,
    image_digest: str,
    index: int,
    layer: str,
    keyid: str,
    policy: tuple[str, str],
    created: datetime,
    registry: str = "127.0.0.1:5000",
    envelope: bytes | None = None,
) -> tuple[str, str]:
    if envelope is None:
        envelope = signed_envelope(
            session, keyid, registry=registry, image=image_digest, layer=layer, policy=policy,
            finished=created,
        )  # fmt: skip
    attestation_id = str(uuid.uuid4())
    sha = hashlib.sha256(envelope).hexdigest()
    session.add(
        AttestationModel(
            id=attestation_id,
            image_id=image_id,
            layer_index=index,
            layer_digest=layer,
            layer_media_type="application/vnd.oci.image.layer.v1.tar+gzip",
            diff_id="sha256:" + "d" * 64,
            chain_id="sha256:" + "d" * 64,
            parent_id=None,
            envelope=envelope,
            envelope_sha256=sha,
            pae_sha256=parse_envelope(envelope).pae_sha256(),
            keyid=keyid,
            policy_id=policy[0],
            policy_version=policy[1],
            manifest_sha256=MANIFEST,
            tree_digest="sha256:" + "f" * 64,
            invocation_id="urn:t",
            status="valid",
            created_at=created,
        )
    )
    session.flush()
    return attestation_id, sha


def seed_world(factory: sessionmaker[Session], keys_dir: Path) -> World:
    """a1: A/L1/K/dev1/T1, a2: A/L2/K/dev2/T2, a3: B/L1/K/dev1/T3, a4: B/L3/K2/prod1/T2."""
    with factory.begin() as session:
        key = key_service.active_signer(session).keyid
        key2 = key_service.add_key(session, keys_dir=keys_dir, algorithm="ed25519", now=T1).keyid
        image_a = add_image(session, IMG_A)
        image_b = add_image(session, IMG_B)
        specs = {
            "a1": (image_a, IMG_A, 0, L1, key, ("dev", "1"), T1),
            "a2": (image_a, IMG_A, 1, L2, key, ("dev", "2"), T2),
            "a3": (image_b, IMG_B, 0, L1, key, ("dev", "1"), T3),
            "a4": (image_b, IMG_B, 1, L3, key2, ("prod", "1"), T2),
        }
        ids: dict[str, str] = {}
        shas: dict[str, str] = {}
        for name, (image_id, digest, index, layer, keyid, policy, created) in specs.items():
            ids[name], shas[name] = add_attestation(
                session, image_id=image_id, image_digest=digest, index=index, layer=layer,
                keyid=keyid, policy=policy, created=created,
            )  # fmt: skip
    with factory() as session:
        paes = {
            name: session.get_one(AttestationModel, ident).pae_sha256 for name, ident in ids.items()
        }
    return World(ids=ids, key=key, key2=key2, envelope_sha256=shas, pae_sha256=paes)


def statuses(factory: sessionmaker[Session], world: World) -> dict[str, str]:
    with factory() as session:
        return {
            name: session.get(AttestationModel, ident).status  # type: ignore[union-attr]
            for name, ident in world.ids.items()
        }
