"""The rules Kubernetes (and git) put on the values of shipyard.yaml's ``deploy:`` section that are written
into manifests: object names, label keys and values, environment variable names, Secret keys, URLs.

Each check returns the value or raises ValueError with one line saying what is allowed; pydantic validators
call them, so a bad value is reported with its key and line when shipyard.yaml loads, before anything is
rendered or written.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from shipyard.core.redact import mask_userinfo
from shipyard.core.workspace.paths import reserved_reason

DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")  # RFC 1123 label: namespaces
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
DNS_SUBDOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})*\Z")  # object names (Secrets, AppProjects), at most 253
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?\Z")  # a label key's name, a value
ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}\Z")
SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}\Z")
BRANCH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/-]{0,199}\Z")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
TOLERATION_KEYS = frozenset({"key", "operator", "value", "effect"})
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
RESERVED_VARS = frozenset({"PORT"})  # the server's own, set by the manifests


def _show(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")


def show_url(url: str) -> str:
    """A URL for a message, its user and password (``scheme://USER:PASS@``) shown as ``***@``."""
    return _show(mask_userinfo(url))


def check_namespace(value: str) -> str:
    if not DNS_LABEL.match(value):
        raise ValueError(f"invalid namespace {_show(value)}: lowercase letters, digits and '-', at most 63")
    return value


def check_subdomain(value: str, what: str) -> str:
    if len(value) > 253 or not DNS_SUBDOMAIN.match(value):
        raise ValueError(f"{_show(value)} is not {what}: lowercase letters, digits, '-' and '.', starting and "
                         "ending with a letter or digit, at most 253")
    return value


def check_label_key(key: str, what: str = "") -> str:
    """``[PREFIX/]NAME``: PREFIX a DNS subdomain, NAME up to 63 letters, digits, '-', '_', '.'."""
    prefix, slash, name = key.rpartition("/")
    bad_prefix = slash and (not prefix or len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix))
    if bad_prefix or not LABEL_NAME.match(name):
        lead = f"{what} " if what else ""
        raise ValueError(f"{lead}{_show(key)} is not a label key ([PREFIX/]NAME: a DNS prefix, then up to 63 "
                         "letters, digits, '-', '_' or '.', starting and ending with a letter or digit)")
    return key


def check_label_value(value: str, what: str) -> str:
    if value and not LABEL_NAME.match(value):
        lead = f"{what}: " if what else ""
        raise ValueError(f"{lead}{_show(value)} is not a label value (up to 63 letters, digits, '-', '_' or "
                         "'.', starting and ending with a letter or digit)")
    return value


def check_toleration(toleration: Mapping[str, str]) -> Mapping[str, str]:
    unknown = sorted(set(toleration) - TOLERATION_KEYS)
    if unknown:
        raise ValueError(f"a toleration has {', '.join(map(repr, unknown))}: it takes key, operator, value and "
                         "effect")
    operator = toleration.get("operator", "Equal")
    if operator not in ("Exists", "Equal"):
        raise ValueError(f"toleration operator {_show(operator)}: use Exists or Equal")
    key = toleration.get("key", "")
    if key:
        check_label_key(key, "toleration key")
    elif operator != "Exists":
        raise ValueError("a toleration with no key needs `operator: Exists`")
    value = toleration.get("value", "")
    if value and operator == "Exists":
        raise ValueError("a toleration with `operator: Exists` takes no value")
    check_label_value(value, "toleration value")
    effect = toleration.get("effect", "")
    if effect and effect not in EFFECTS:
        raise ValueError(f"toleration effect {_show(effect)}: use {', '.join(EFFECTS)} (or none: all)")
    return toleration


def check_env_var(name: str) -> str:
    if not ENV_VAR.match(name):
        raise ValueError(f"{_show(name)} is not an environment variable name (a letter or '_', then letters, "
                         "digits and '_')")
    if name in RESERVED_VARS:
        raise ValueError(f"{name} is set by Shipyard (the server's port): name the variable otherwise")
    return name


def check_secret_key(key: str) -> str:
    if not SECRET_KEY.match(key) or key in (".", "..") or key.startswith(".."):
        raise ValueError(f"{_show(key)} is not a Secret key (letters, digits, '-', '_' and '.', at most 253; "
                         "not '.' or '..')")
    return key


def check_printable(value: str, what: str, limit: int) -> str:
    if not value or len(value) > limit or CONTROL.search(value) or value != value.strip():
        raise ValueError(f"{what} {_show(value)}: one line of printable text, at most {limit} characters")
    return value


def check_url(url: str, what: str) -> str:
    """An http(s) URL with a host and nothing that could carry a credential into git (no user:password@)."""
    problem = None
    if len(url) > 2048 or CONTROL.search(url) or any(c.isspace() for c in url):
        problem = "one URL, with no spaces or control characters"
    else:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            problem = "write http(s)://HOST[:PORT][/PATH]"
        elif "@" in parts.netloc:
            problem = "no user or password in it (it is written into git): give credentials another way"
        elif parts.query or parts.fragment or "#" in url:
            problem = "no query or fragment"
    if problem is not None:
        raise ValueError(f"{what} {show_url(url)}: {problem}")
    return url


def check_folder(folder: str) -> str:
    """A folder relative to the repository's top, outside version control's and Shipyard's own folders."""
    norm = posixpath.normpath(folder) if folder else ""
    if not folder or folder.startswith("/") or norm in (".", "..") or norm.startswith("../") \
            or CONTROL.search(folder) or "\\" in folder:
        raise ValueError(f"{_show(folder)}: give a folder inside the repository, relative to its top "
                         "(e.g. deploy)")
    why = reserved_reason(norm.lower())
    if why is not None:
        raise ValueError(f"{_show(folder)} is refused: {why}; choose a folder of its own (e.g. deploy)")
    return folder


def check_branch(branch: str) -> str:
    """A branch name as git's check-ref-format takes it, and not one that reads as another ref."""
    parts = branch.split("/")
    if not BRANCH.match(branch) or ".." in branch or "//" in branch or branch.endswith(("/", ".", ".lock")) \
            or any(p.startswith(".") or p.endswith(".lock") for p in parts) or branch == "HEAD" \
            or branch.startswith("refs/") or "@{" in branch:
        raise ValueError(f"branch {_show(branch)}: a branch name git accepts (letters, digits, '.', '_', '-', "
                         "'/'), not HEAD or refs/...")
    return branch
