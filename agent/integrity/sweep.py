# SPDX-License-Identifier: Apache-2.0
"""One integrity sweep over the tracked containers.

For each container: every layer's attestation (verified), every attested
layer's snapshot compared with its manifest, and the rw layer checked for
drift. A layer shared by many containers is scanned once per sweep; its
findings are reported for each container that runs on it.

A partial sweep (``changed``: the directories the inotify watch saw change)
re-scans only those directories and reports only the containers that use
one. Such a container's result is still whole: an unchanged directory
contributes its last findings (its scan state, and so its incremental
re-hash, is untouched), so the ledger neither resolves nor re-reports them;
only the directories actually scanned add an :class:`IntegrityCheck`.

The full re-hash every N checks is counted per directory (the checkers keep
one counter per directory): every N-th scan of a directory hashes every
file, whether a periodic or a watch-triggered sweep made it. A directory
the watch re-checks often is fully re-hashed sooner, in checks, not later;
one no event touches is fully re-hashed every N periodic sweeps as before.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.containerd import LayerInfo
from agent.integrity.attestation import AttestationSource, LayerAttestation
from agent.integrity.drift import DriftFinding, MergedView, UpperChecker, merged_view
from agent.integrity.inventory import TrackedContainer
from agent.integrity.layers import LayerCheck, LayerChecker
from agent.integrity.pending import PendingClock
from agent.report import CheckScope, IntegrityCheck, LayerReport, Violation
from attestor.digests import Digest
from attestor.manifest import AttestedManifest, Change, FileManifest, Unscannable

#: Merged attested views kept between sweeps (one per image in use).
_MAX_VIEWS = 64
#: Longest error or reason text carried into a report or a violation.
_MAX_TEXT = 1000

__all__ = ["ContainerResult", "LayerResult", "SweepResult", "Sweeper", "UpperCheck"]


@dataclass(frozen=True)
class LayerResult:
    """One layer of one container: attestation status and, if attested, the check."""

    layer: LayerInfo
    attestation: LayerAttestation
    check: LayerCheck | None

    def report(self) -> LayerReport:
        """The ``LayerReport`` of the provenance report."""
        return LayerReport(
            index=self.layer.index,
            digest=self.layer.digest,
            diff_id=self.layer.diff_id,
            chain_id=self.layer.chain_id,
            attestation_id=self.attestation.attestation_id,
            keyid=self.attestation.keyid,
            status=self.attestation.status,
        )


@dataclass(frozen=True)
class UpperCheck:
    """The drift check of a container's rw layer."""

    upperdir: Path | None
    findings: tuple[DriftFinding, ...]
    files_checked: int
    full_rehash: bool
    error: str | None = None
    #: What the drift check could not read (each is a violation).
    unscannable: tuple[Unscannable, ...] = ()


@dataclass(frozen=True)
class ContainerResult:
    """Everything one sweep found for one container."""

    container: TrackedContainer
    layers: tuple[LayerResult, ...]
    upper: UpperCheck
    violations: tuple[Violation, ...]
    checks: tuple[IntegrityCheck, ...]


@dataclass(frozen=True)
class SweepResult:
    """One sweep; ``errors`` are containers or layers that could not be checked.

    ``partial``: only the containers using a changed directory are in
    ``containers`` (see the module docstring); the others were not looked at.
    """

    checked_at: datetime
    containers: tuple[ContainerResult, ...]
    errors: tuple[str, ...]
    partial: bool = False

    @property
    def violations(self) -> tuple[Violation, ...]:
        """All violations, container by container."""
        return tuple(v for c in self.containers for v in c.violations)


def _integrity_check(
    now: datetime,
    scope: CheckScope,
    layer_digest: Digest | None,
    *,
    found: int,
    files: int,
    full: bool,
    error: str | None,
) -> IntegrityCheck:
    """The history entry of one directory's check (a lower layer or the upperdir)."""
    return IntegrityCheck(
        checked_at=now,
        scope=scope,
        layer_digest=layer_digest,
        result="error" if error else ("violations" if found else "clean"),
        files_checked=files,
        violations=found,
        full_rehash=full,
        error=_short(error),
    )


def _short(text: str | None) -> str | None:
    # The report schema caps an error at 1000 characters.
    return None if text is None else text[:_MAX_TEXT]


def _change_detail(change: Change, check: LayerCheck) -> dict[str, Any]:
    return {
        "scope": "layer",
        "expected": change.expected,
        "actual": change.actual,
        "snapshot_dir": str(check.snapshot_dir),
    }


def _unscannable_detail(scope: CheckScope, item: Unscannable, where: Path | None) -> dict[str, Any]:
    return {
        "scope": scope,
        "reason": item.reason[:_MAX_TEXT],
        "too_large": item.too_large,
        "snapshot_dir": None if where is None else str(where),
    }


def _origin(path: str, layers: Sequence[LayerResult]) -> Digest | None:
    """The topmost attested layer that has ``path``."""
    for result in reversed(layers):
        manifest = result.attestation.manifest
        if manifest is not None and manifest.get(path) is not None:
            return result.layer.digest
    return None


class Sweeper:
    """Runs sweeps; keeps scan state (via the checkers) between them.

    Args:
        attestations: where attested manifests come from.
        layers: checker for lower-layer snapshot directories.
        upper: drift checker for rw layers (same budget).
        pending_grace: seconds a layer may stay ``pending`` (its attestation
            cannot be looked up or verified yet) before it is an ``unverified``
            violation; None never makes it one (``check --once``, where
            pending is an error of the report).
        pending_clock: when each layer was first seen pending (durable in the
            daemon, so a restart does not reset the grace period); default:
            in memory only.
    """

    def __init__(
        self,
        *,
        attestations: AttestationSource,
        layers: LayerChecker,
        upper: UpperChecker,
        pending_grace: float | None = None,
        pending_clock: PendingClock | None = None,
    ) -> None:
        self._attestations = attestations
        self._layers = layers
        self._upper = upper
        self._pending_grace = pending_grace
        #: When each layer was first seen pending, while it stays pending.
        self._pending_since = pending_clock if pending_clock is not None else PendingClock()
        self._views: dict[tuple[str, ...], MergedView] = {}
        # The last result of each directory, for partial sweeps: a lower
        # layer's by the attested manifest it was compared with, an upperdir's
        # by its merged view.
        self._last_layers: dict[Path, tuple[str, LayerCheck]] = {}
        self._last_uppers: dict[Path, tuple[tuple[str, ...], UpperCheck]] = {}

    def sweep(
        self,
        containers: Sequence[TrackedContainer],
        *,
        now: datetime,
        changed: Collection[Path] | None = None,
    ) -> SweepResult:
        """Check every container once, or only what changed.

        Args:
            containers: from :func:`agent.integrity.inventory.list_tracked`.
            now: the time stamped on the checks and violations.
            changed: None for a full sweep; else the lower snapshot dirs and
                upperdirs that changed: a partial sweep of the containers
                using one (module docstring). State of other directories,
                and of containers gone from ``containers``, is kept.
        """
        scanned: dict[Path, LayerCheck] = {}
        errors: list[str] = []
        if changed is None:
            rescan: Collection[Path] | None = None
            chosen = containers
        else:
            rescan = frozenset(changed)
            chosen = [c for c in containers if _uses(c, rescan)]
        results = [self._container(c, scanned, errors, now, rescan) for c in chosen]
        if changed is None:
            self._forget_unused(containers)
        return SweepResult(now, tuple(results), tuple(errors), partial=changed is not None)

    def _forget_unused(self, containers: Sequence[TrackedContainer]) -> None:
        self._pending_since.retain({x.digest for c in containers for x in c.layers})
        live_layers = {x.snapshot_dir for c in containers for x in c.layers}
        for path in self._layers.tracked() - live_layers:
            self._layers.forget(path)
        for path in set(self._last_layers) - live_layers:
            del self._last_layers[path]
        live_uppers = {c.upperdir for c in containers}
        for path in self._upper.tracked() - live_uppers:
            self._upper.forget(path)
        for path in set(self._last_uppers) - live_uppers:
            del self._last_uppers[path]

    def _container(
        self,
        container: TrackedContainer,
        scanned: dict[Path, LayerCheck],
        errors: list[str],
        now: datetime,
        rescan: Collection[Path] | None,
    ) -> ContainerResult:
        violations: list[Violation] = []
        checks: list[IntegrityCheck] = []
        layers: list[LayerResult] = []

        def violation(
            layer: Digest | None, path: str | None, kind: Any, detail: dict[str, Any]
        ) -> None:
            violations.append(
                Violation.create(
                    container_id=container.id,
                    image_digest=container.image_digest,
                    layer_digest=layer,
                    path=path,
                    kind=kind,
                    detected_at=now,
                    detail={"namespace": container.namespace, **detail},
                )
            )

        if container.unresolved is not None or container.image_digest is None:
            # Nothing of it can be checked: one finding, never a skipped container.
            why = container.unresolved or "image digest unknown"
            reason = f"image {container.image_name} not checked: {why}"
            violation(None, None, "unverified", {"reason": reason[:_MAX_TEXT]})
            return ContainerResult(
                container, (), UpperCheck(None, (), 0, False), tuple(violations), ()
            )
        for layer in container.layers:
            att = self._attestations.resolve(
                layer, image_name=container.image_name, image_digest=container.image_digest
            )
            check: LayerCheck | None = None
            waited = self._pending(layer.digest, att.status, now)
            if att.status in ("unattested", "bad-signature", "revoked"):
                violation(
                    layer.digest, None, att.status, {"reason": (att.reason or "")[:_MAX_TEXT]}
                )
            elif waited is not None:
                reason = f"no verified attestation for {int(waited)} s: {att.reason or 'pending'}"
                violation(layer.digest, None, "unverified", {"reason": reason[:_MAX_TEXT]})
            elif att.manifest is not None:
                check, fresh = self._check_layer(layer, att.manifest, scanned, rescan)
                for change in check.changes:
                    violation(layer.digest, change.path, change.kind, _change_detail(change, check))
                for item in check.unscannable:
                    detail = _unscannable_detail("layer", item, layer.snapshot_dir)
                    violation(layer.digest, item.path, "unscannable", detail)
                if not fresh:  # a partial sweep: its last findings stand, no new check
                    layers.append(LayerResult(layer, att, check))
                    continue
                if check.error is not None:
                    errors.append(f"container {container.id} layer {layer.digest}: {check.error}")
                checks.append(
                    _integrity_check(
                        now,
                        "layer",
                        layer.digest,
                        found=len(check.changes) + len(check.unscannable),
                        files=check.files_checked,
                        full=check.full_rehash,
                        error=check.error,
                    )
                )
            layers.append(LayerResult(layer, att, check))

        upper, fresh = self._check_upper(container, layers, rescan)
        for finding in upper.findings:
            origin = (
                None if finding.kind == "drift-new-executable" else _origin(finding.path, layers)
            )
            violation(
                origin,
                finding.path,
                finding.kind,
                {
                    "scope": "upperdir",
                    "expected": finding.expected,
                    "actual": finding.actual,
                    "aspects": list(finding.aspects),
                },
            )
        for item in upper.unscannable:
            if upper.upperdir is not None:
                detail = _unscannable_detail("upperdir", item, upper.upperdir)
                violation(None, item.path, "unscannable", detail)
        if upper.error is not None and fresh:
            errors.append(f"container {container.id} upperdir: {upper.error}")
        if upper.upperdir is not None and fresh:
            checks.append(
                _integrity_check(
                    now,
                    "upperdir",
                    None,
                    found=len(upper.findings) + len(upper.unscannable),
                    files=upper.files_checked,
                    full=upper.full_rehash,
                    error=upper.error,
                )
            )
        return ContainerResult(container, tuple(layers), upper, tuple(violations), tuple(checks))

    def _pending(self, digest: Digest, status: str, now: datetime) -> float | None:
        """Seconds ``digest`` has been pending, once past the grace period; else None."""
        if status != "pending":
            self._pending_since.clear(digest)
            return None
        since = self._pending_since.since(digest, now)
        waited = (now - since).total_seconds()
        if self._pending_grace is None or waited < self._pending_grace:
            return None
        return waited

    def _check_layer(
        self,
        layer: LayerInfo,
        attested: FileManifest | AttestedManifest,
        scanned: dict[Path, LayerCheck],
        rescan: Collection[Path] | None,
    ) -> tuple[LayerCheck, bool]:
        """The check of one layer, and whether it was made by this sweep."""
        where = layer.snapshot_dir
        if where is None:
            # The snapshotter holds no directory for a layer a container runs
            # on (removed, or never unpacked): nothing can be re-checked, which
            # is a finding, never a clean layer. A partial sweep adds no check.
            missing = (Unscannable(None, "layer has no snapshot directory (not unpacked)"),)
            return LayerCheck(Path(), (), 0, 0, False, unscannable=missing), rescan is None
        done = scanned.get(where)
        if done is not None:
            return done, True
        last = self._last_layers.get(where)
        if (
            rescan is not None
            and where not in rescan
            and last is not None
            and last[0] == attested.sha256
        ):
            return last[1], False
        done = self._layers.check(where, attested)
        scanned[where] = done
        self._last_layers[where] = (attested.sha256, done)
        return done, True

    def _check_upper(
        self,
        container: TrackedContainer,
        layers: Sequence[LayerResult],
        rescan: Collection[Path] | None,
    ) -> tuple[UpperCheck, bool]:
        """The drift check of the rw layer, and whether it was made by this sweep."""
        upperdir = container.upperdir
        if upperdir is None:
            return UpperCheck(None, (), 0, False), True
        fresh = rescan is None or upperdir in rescan
        manifests = [r.attestation.manifest for r in layers]
        if any(m is None for m in manifests):
            error = "not every lower layer has a valid attestation"
            return UpperCheck(upperdir, (), 0, False, error), fresh
        key = tuple(m.sha256 for m in manifests if m is not None)
        last = self._last_uppers.get(upperdir)
        if not fresh and last is not None and last[0] == key:
            return last[1], False
        view = self._views.get(key)
        if view is None:
            if len(self._views) >= _MAX_VIEWS:
                self._views.clear()
            view = merged_view([m for m in manifests if m is not None])
            self._views[key] = view
        # A walk that failed as a whole comes back as an unscannable record.
        scan = self._upper.check(upperdir, view)
        result = UpperCheck(
            upperdir, scan.findings, scan.files, scan.full, unscannable=scan.unscannable
        )
        self._last_uppers[upperdir] = (key, result)
        return result, True


def _uses(container: TrackedContainer, changed: Collection[Path]) -> bool:
    """Whether ``container``'s upperdir or one of its layers' directories is in ``changed``."""
    if container.upperdir is not None and container.upperdir in changed:
        return True
    return any(x.snapshot_dir is not None and x.snapshot_dir in changed for x in container.layers)
