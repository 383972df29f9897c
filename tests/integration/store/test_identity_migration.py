# SPDX-License-Identifier: Apache-2.0
"""Migration 0007 on SQLite and the harness PostgreSQL: existing attestations get
their signed-content identity (``pae_sha256``) and stored attestation revocations
are re-expressed with it, so they hold for re-serialized envelopes too."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from securesystemslib.signer import CryptoSigner
from sqlalchemy import Engine, text

from attestor.dsse import Envelope, Signature, parse_envelope
from attestor.revocation import AttestationMeta, AttestationTarget
from attestor.signing.dsse import sign_envelope
from attestor.store import signing_keys, verifications
from attestor.store.attestations import NewAttestation, add_attestations, list_attestations
from attestor.store.db import (
    MIGRATIONS_DIR,
    current_revision,
    make_session_factory,
    upgrade,
)
from attestor.store.models import Base, FileManifestModel, ImageModel
from attestor.store.revocations import current_revocation_set, mark_revoked
from tests.alembic_head import head_revision

NOW = datetime(2026, 12, 1, tzinfo=UTC)
SIGNER = CryptoSigner.generate_ed25519()
KEYID = SIGNER.public_key.keyid
BEFORE = "0006"


def _envelope(n: int) -> bytes:
    return sign_envelope(b'{"n":%d}' % n, SIGNER, keyid=KEYID).to_json()


def _seed(engine: Engine, envelopes: dict[str, bytes], targets: list[dict[str, str]]) -> None:
    meta = sa.MetaData()
    with engine.begin() as conn:
        tables = {
            t: sa.Table(t, meta, autoload_with=conn)
            for t in ("signing_keys", "images", "file_manifests", "attestations", "revocations")
        }
        conn.execute(
            tables["signing_keys"].insert(),
            {"keyid": KEYID, "algorithm": "ed25519", "public_key_pem": "P", "signer_uri": "u",
             "status": "active", "created_at": NOW},
        )  # fmt: skip
        conn.execute(
            tables["images"].insert(),
            {"id": "img", "registry": "r", "repository": "a", "tag": None,
             "manifest_digest": "sha256:" + "1" * 64, "media_type": "m",
             "requested_reference": "r/a", "created_at": NOW},
        )  # fmt: skip
        conn.execute(
            tables["file_manifests"].insert(),
            {"sha256": "f" * 64, "tree_digest": "t", "body": b"{}", "entry_count": 0,
             "created_at": NOW},
        )  # fmt: skip
        parent = None
        for index, (ident, envelope) in enumerate(envelopes.items()):
            conn.execute(
                tables["attestations"].insert(),
                {"id": ident, "image_id": "img", "layer_index": index,
                 "layer_digest": "sha256:" + "2" * 64, "layer_media_type": "m",
                 "diff_id": "d", "chain_id": "c", "parent_id": parent, "envelope": envelope,
                 "envelope_sha256": hashlib.sha256(envelope).hexdigest(), "keyid": KEYID,
                 "policy_id": "dev", "policy_version": str(index), "manifest_sha256": "f" * 64,
                 "tree_digest": "t", "invocation_id": "i", "status": "valid",
                 "created_at": NOW},
            )  # fmt: skip
            parent = ident
        for sequence, target in enumerate(targets, start=1):
            conn.execute(
                tables["revocations"].insert(),
                {"id": f"rev-{sequence}", "sequence": sequence, "kind": target["kind"],
                 "target": target, "reason": "r", "actor": "a", "created_at": NOW},
            )  # fmt: skip
            conn.execute(text("UPDATE revocation_feed SET last_sequence = :s"), {"s": sequence})


def _targets(engine: Engine) -> dict[str, dict[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, target FROM revocations ORDER BY sequence")).all()
    return {r[0]: r[1] if isinstance(r[1], dict) else json.loads(r[1]) for r in rows}


def test_upgrade_backfills_identity_and_rewrites_targets(empty_engine: Engine) -> None:
    upgrade(empty_engine, BEFORE)
    envelopes = {"a1": _envelope(1), "a2": _envelope(2)}
    revoked = {"kind": "attestation", "attestation_id": "a2",
               "envelope_sha256": hashlib.sha256(envelopes["a2"]).hexdigest()}  # fmt: skip
    subject = {"kind": "subject", "digest": "sha256:" + "3" * 64}
    _seed(empty_engine, envelopes, [revoked, subject])

    upgrade(empty_engine)

    assert current_revision(empty_engine) == head_revision()
    with empty_engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        stored = dict(conn.execute(text("SELECT id, pae_sha256 FROM attestations")).all())
    paes = {k: parse_envelope(v).pae_sha256() for k, v in envelopes.items()}
    assert stored == paes
    assert _targets(empty_engine) == {
        "rev-1": {"kind": "attestation", "attestation_id": "a2", "pae_sha256": paes["a2"]},
        "rev-2": subject,
    }
    # The migrated revocation now catches a copy of a2 with its keyid changed
    # and a junk signature: the store's set and the "one of ours" look-up agree.
    original = parse_envelope(envelopes["a2"])
    copy = Envelope(
        original.payload_type,
        original.payload,
        (Signature("someone-else", original.signatures[0].sig), Signature("x", b"\x01" * 64)),
    )
    assert hashlib.sha256(copy.to_json()).digest() != hashlib.sha256(envelopes["a2"]).digest()
    factory = make_session_factory(empty_engine)
    with factory() as session:
        hit = current_revocation_set(session).match(AttestationMeta(pae_sha256=copy.pae_sha256()))
        assert hit is not None and hit.id == "rev-1"
        ours = verifications.find_attestations(session, [copy.pae_sha256()])
        assert ours[copy.pae_sha256()].id == "a2"

    down = _downgrade(empty_engine)
    assert down == {"rev-1": revoked, "rev-2": subject}


def _downgrade(engine: Engine) -> dict[str, dict[str, str]]:
    # attestor.store.db only upgrades; downgrading is a test (and operator) matter.
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    command.downgrade(config, BEFORE)
    assert current_revision(engine) == BEFORE
    return _targets(engine)


def test_upgrade_refuses_to_drop_a_revocation_it_cannot_rewrite(empty_engine: Engine) -> None:
    upgrade(empty_engine, BEFORE)
    lost = {"kind": "attestation", "attestation_id": "gone", "envelope_sha256": "9" * 64}
    _seed(empty_engine, {"a1": _envelope(1)}, [lost])
    with pytest.raises(RuntimeError, match="revocation rev-1: attestation 'gone' is not stored"):
        upgrade(empty_engine)
    # Nothing half-done: the database stays at the old revision with the old target.
    assert current_revision(empty_engine) == BEFORE
    assert _targets(empty_engine)["rev-1"] == lost


def test_rows_of_one_signed_statement_share_their_fate(db_engine: Engine) -> None:
    """Two stored envelopes of the same statement (other keyid): the identity is
    computed on insert, a revoked row wins the look-up, and an attestation
    revocation covers every stored copy."""
    stored = parse_envelope(_envelope(7))
    other = Envelope(
        stored.payload_type, stored.payload, (replace(stored.signatures[0], keyid=""),)
    )
    factory = make_session_factory(db_engine)
    with factory.begin() as session:
        signing_keys.add_active_key(
            session, keyid=KEYID, algorithm="ed25519", public_key_pem="P", signer_uri="u", now=NOW
        )
        session.add(
            ImageModel(id="img", registry_host="r", repository="a", tag=None,
                       manifest_digest="sha256:" + "1" * 64, media_type="m",
                       requested_reference="r/a", created_at=NOW)
        )  # fmt: skip
        session.add(
            FileManifestModel(sha256="f" * 64, tree_digest="t", body=b"{}", entry_count=0,
                              created_at=NOW)
        )  # fmt: skip
        session.flush()
        add_attestations(
            session,
            image_id="img",
            items=[
                NewAttestation(
                    id=f"a{i}",
                    layer_index=i,
                    layer_digest="sha256:" + "2" * 64,
                    layer_media_type="m",
                    diff_id="d",
                    chain_id="c",
                    parent_id=None,
                    envelope=envelope.to_json(),
                    envelope_sha256=hashlib.sha256(envelope.to_json()).hexdigest(),
                    keyid=KEYID,
                    policy_id="dev",
                    policy_version="1",
                    manifest_sha256="f" * 64,
                    tree_digest="t",
                    invocation_id="i",
                )  # fmt: skip
                for i, envelope in enumerate((stored, other))
            ],
            now=NOW,
        )
    identity = stored.pae_sha256()
    with factory.begin() as session:
        rows = {r.id: r.pae_sha256 for r in list_attestations(session, limit=10)[0]}
        assert rows == {"a0": identity, "a1": identity}
        session.execute(text("UPDATE attestations SET status = 'revoked' WHERE id = 'a1'"))
    with factory() as session:
        found = verifications.find_attestations(session, [identity])
        assert (found[identity].id, found[identity].status) == ("a1", "revoked")
    with factory.begin() as session:
        flipped = mark_revoked(session, AttestationTarget("a0", identity))
    assert flipped == 1  # a0; a1 was revoked already
    with factory() as session:
        assert {r.status for r in list_attestations(session, limit=10)[0]} == {"revoked"}
