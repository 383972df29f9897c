# SPDX-License-Identifier: Apache-2.0
"""The REST API: Flask and flask-smorest live only in this package."""

from attestor.api.app import create_app

__all__ = ["create_app"]
