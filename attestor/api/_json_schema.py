# SPDX-License-Identifier: Apache-2.0
"""Run the full JSON Schema check of ``schemas/`` inside a marshmallow schema.

The marshmallow schemas describe request bodies for OpenAPI and parse types;
``schemas/*.schema.json`` stay the single source of the exact rules. Raising
``ValidationError`` here lets flask-smorest answer 422 with the failing path,
like any other validation error, before the view runs.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from attestor.errors import InvalidInput
from attestor.schemas import validate

__all__ = ["check_against"]


def check_against(document: Any, schema_name: str) -> None:
    """Validate ``document`` against ``schemas/<schema_name>.schema.json``.

    Raises:
        marshmallow.ValidationError: The document does not match; the message
            names the JSON path and the reason.
    """
    try:
        validate(document, schema_name)
    except InvalidInput as e:
        raise ma.ValidationError(e.message) from e
