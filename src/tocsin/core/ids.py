"""Identifiers and secrets."""

from __future__ import annotations

import hashlib
import secrets


def new_secret(prefix: str, nbytes: int = 24) -> str:
    """A random, URL-safe secret with a readable prefix (e.g. `tok_...`)."""
    return f"{prefix}_{secrets.token_urlsafe(nbytes)}"


def digest(secret: str) -> str:
    """SHA-256 hex digest of a high-entropy secret (tokens; passwords use argon2)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def incident_ref(number: int) -> str:
    return f"INC-{number}"


def parse_incident_ref(ref: str) -> int | None:
    """Accept `INC-42`, `inc-42` or `42`; None when it is neither."""
    text = ref.strip()
    if text.upper().startswith("INC-"):
        text = text[4:]
    return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else None
