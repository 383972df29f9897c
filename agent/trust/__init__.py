# SPDX-License-Identifier: Apache-2.0
"""The server keys the agent pins on the node, and how a new key set is accepted.

At first registration the agent pins the server's signed key set (trust on
first use), or the keys an operator gave it (``--pinned-keys``; then TOFU is
off). Later sets are accepted only when a pinned key signed them and their
version is higher; anything else is refused and the old pins stay. Spec:
``docs/key-set.md``.
"""

from agent.trust._state import PublicKeyEntry, trusted_keys
from agent.trust.pins import KeyPins, Offer, Pins, load_operator_keys

__all__ = ["KeyPins", "Offer", "Pins", "PublicKeyEntry", "load_operator_keys", "trusted_keys"]
