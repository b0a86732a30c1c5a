"""Credentials in URLs: found and masked before anything is logged or stored (no MLflow import)."""
from __future__ import annotations

import re

# user (possibly empty) ":" password (which may hold "/" or "@") "@": masking too much is harmless
USERINFO = re.compile(r"(://[^/:@\s'\"]*):[^\s'\"]*@")


def scrub(text: str) -> str:
    """Mask passwords of URLs in `text` (postgresql://u:secret@h → postgresql://u:***@h)."""
    return USERINFO.sub(r"\1:***@", text)


def has_password(url: str) -> bool:
    return USERINFO.search(url) is not None
