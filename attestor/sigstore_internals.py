# SPDX-License-Identifier: Apache-2.0
"""The one module that uses sigstore-python's non-public API.

sigstore-python keeps some of what a verifier needs (trust-root internals,
log-entry bodies, embedded trust roots) under underscore names, which can
change in any release. Every such use lives here, and
``tests/unit/sigstore_internals/`` pins the behaviour relied on, so that an
upgrade that breaks one fails there first.
"""
