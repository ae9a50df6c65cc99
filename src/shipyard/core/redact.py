"""Credentials written into URLs, masked for messages: ``scheme://USER:PASS@host/...`` reads ``scheme://***@host/...``.

One rule for every place a URL is printed or refused (store and remote URLs, S3 endpoints, deploy values), so a
credential someone wrote into a URL is never echoed to a terminal, a log or CI output.
"""

from __future__ import annotations

import re

USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s'\"@]*@")


def has_userinfo(url: str) -> bool:
    """Whether ``url`` starts with a scheme and carries a user name or password (``s3://KEY:SECRET@bucket``)."""
    return USERINFO.match(url) is not None


def mask_userinfo(text: str) -> str:
    """``text`` with the user name and password of every URL in it shown as ``***``."""
    return USERINFO.sub(r"\1***@", text)
