"""Password policy and the hashed forms secrets take in the YAML (no plain text required).

- Business account passwords: PBKDF2-SHA256, `pbkdf2_sha256$<iterations>$<salt b64>$<hash b64>`.
- Softphone passwords: the digest HA1 for MD5 and SHA-256 (RFC 7616 s. 3.4.2), bound to the realm:
  `digest$<realm>$<md5 HA1>$<sha-256 HA1>`. The realm is in the string so a config that changes realm is
  caught at load instead of every phone failing to register.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass, field

from ..registrar.credentials import ha1_pair

PBKDF2_ITERATIONS = 200_000
_MD5_HEX = re.compile(r"[0-9a-f]{32}").fullmatch          # ASCII lower-case hex only
_SHA256_HEX = re.compile(r"[0-9a-f]{64}").fullmatch
RULES = ("upper", "lower", "digit", "special")


@dataclass(frozen=True)
class PasswordPolicy:
    min_length: int = 8
    require: tuple[str, ...] = RULES
    forbid_account_name: bool = True

    def violations(self, password: str, account: str = "") -> list[str]:
        """Every rule the password breaks, as short phrases (empty when it is acceptable)."""
        out = []
        if len(password) < self.min_length:
            out.append(f"shorter than {self.min_length} characters")
        checks = {"upper": str.isupper, "lower": str.islower, "digit": str.isdigit,
                  "special": lambda c: not c.isalnum() and not c.isspace()}
        for rule in self.require:
            if not any(checks[rule](c) for c in password):
                out.append({"upper": "no upper-case letter", "lower": "no lower-case letter",
                            "digit": "no digit", "special": "no special character"}[rule])
        if self.forbid_account_name and account:
            low = password.lower()
            if low == account.lower():
                out.append("equal to the account name")
            elif low == account.lower()[::-1]:
                out.append("equal to the account name reversed")
        return out


def hash_password(password: str, iterations: int = PBKDF2_ITERATIONS, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    dk = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    b64 = lambda b: base64.b64encode(b).decode().rstrip("=")
    return f"pbkdf2_sha256${iterations}${b64(salt)}${b64(dk)}"


def check_password(password: str, encoded: str) -> bool:
    try:
        scheme, iters, salt, digest = encoded.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        pad = lambda s: base64.b64decode(s + "=" * (-len(s) % 4))
        dk = hashlib.pbkdf2_hmac("sha256", password.encode(), pad(salt), int(iters))
        return hmac.compare_digest(dk, pad(digest))
    except (ValueError, TypeError):
        return False


def valid_password_hash(encoded: str) -> str | None:
    """None when well formed, else why not."""
    parts = encoded.split("$")
    if len(parts) != 4 or parts[0] != "pbkdf2_sha256":
        return "expected pbkdf2_sha256$<iterations>$<salt>$<hash> (make one with `softswitch passwd`)"
    if not parts[1].isascii() or not parts[1].isdigit() or len(parts[1]) > 9 or int(parts[1]) < 10_000:
        return "iteration count must be a number of at least 10000"
    return None


def softphone_hash(number: str, realm: str, password: str) -> str:
    pair = ha1_pair(number, realm, password)
    return f"digest${realm}${pair['MD5']}${pair['SHA-256']}"


def parse_softphone_hash(encoded: str) -> tuple[str, dict[str, str]]:
    """(realm, {"MD5": ha1, "SHA-256": ha1}); ValueError with the reason when malformed."""
    parts = encoded.split("$")
    if len(parts) != 4 or parts[0] != "digest":
        raise ValueError("expected digest$<realm>$<md5 HA1>$<sha-256 HA1> (make one with `softswitch passwd`)")
    _, realm, md5, sha = parts
    if not _MD5_HEX(md5) or not _SHA256_HEX(sha):
        raise ValueError("HA1 values must be 32 (MD5) and 64 (SHA-256) lower-case hex digits")
    return realm, {"MD5": md5, "SHA-256": sha}
