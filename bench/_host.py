# SPDX-License-Identifier: Apache-2.0
"""The host line every benchmark prints first, so that a figure is read beside the machine.

The figures that matter are ratios to a raw limit measured in the same run;
the host line says which CPU, how many cores and which Python and OpenSSL made
them, so that runs on different hosts can be told apart.
"""

from __future__ import annotations

import os
import platform
import ssl
from pathlib import Path

__all__ = ["cpu_model", "host_line", "print_host"]


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def host_line() -> str:
    """``host: <cpu model>, <n> cores usable, Python x.y.z, OpenSSL ...``."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"host: {cpu_model()}, {cores} cores usable, "
        f"Python {platform.python_version()}, {ssl.OPENSSL_VERSION}"
    )


def print_host() -> None:
    """Print :func:`host_line`; call it before any figure."""
    print(host_line(), flush=True)
