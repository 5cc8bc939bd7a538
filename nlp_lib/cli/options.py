"""What every command shares: ``key=value`` arguments, the trust options, the error exit."""

from __future__ import annotations

import sys
from typing import Any

from nlp_lib.errors import ConfigError

__all__ = ["TRUST_KEYS", "fail", "key_values", "trust_options"]

# what a bundle or a run directory may build besides nlp_lib's own classes (nlp_lib.trust)
TRUST_KEYS = ("trust_code", "trust")


def fail(e: BaseException) -> int:
    """Print a command's error (no traceback) and return its exit status, 2."""
    print(f"nlp-lib: error: {e}", file=sys.stderr)
    return 2


def key_values(args: list[str], allowed: set[str], command: str) -> tuple[dict[str, str], list[str]]:
    """``key=value`` arguments of a command: ``allowed`` keys, and the rest (config overrides)."""
    known, rest = {}, []
    for a in args:
        key, sep, value = a.partition("=")
        if not sep:
            raise ConfigError(f"{command}: expected KEY=VALUE, got {a!r}")
        if key in allowed:
            known[key] = value
        else:
            rest.append(a)
    return known, rest


def trust_options(opts: dict[str, str]) -> dict[str, Any]:
    """``trust_code=true|false`` and ``trust=pkg.a,pkg.b`` of a command line, as :func:`nlp_lib.load` takes them."""
    value = str(opts.get("trust_code", "false")).strip().lower()
    if value not in ("true", "false"):
        raise ConfigError(f"trust_code: must be true or false, got {opts['trust_code']!r}")
    names = [t.strip() for t in str(opts.get("trust", "")).strip("[]").split(",") if t.strip()]
    return {"trust_code": value == "true", "trust": names}
