# SPDX-License-Identifier: Apache-2.0
"""Start-up checks of `attestor serve` and `attestor worker` that need I/O.

:func:`attestor.config.load_settings` only parses and validates values. What
needs files, environment variables or sigstore's trust configuration is checked
here, once at start, so that a wrong setting stops the process with one line
(exit 2) instead of failing the first request or job.
"""

from __future__ import annotations

from collections.abc import Mapping

from attestor.config import Settings, keyless_config
from attestor.keyless import KeylessSigner
from attestor.registry import load_registry_credentials

__all__ = ["check_start_up"]


def check_start_up(settings: Settings, environ: Mapping[str, str]) -> None:
    """Check what the settings name can be used: token, trust config, credentials file.

    In keyless mode a signer is built and dropped: its constructor loads the
    trust config and checks that the token source yields a usable token now
    (no network: the token is parsed, not sent).

    Args:
        settings: Validated settings.
        environ: Where a ``keyless_token_env`` variable is read from.

    Raises:
        ConfigError: one line naming what is wrong.
    """
    if settings.signing_mode == "keyless":
        KeylessSigner(keyless_config(settings), environ=environ)
    if settings.registry_credentials_file is not None:
        # A bad or world-readable file stops the start.
        load_registry_credentials(settings.registry_credentials_file)
