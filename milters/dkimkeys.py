"""DKIM keys and signing: key files, `owlery dkim genkey`, and relaxed/relaxed signatures.

Signing is done here rather than by dkimpy because dkimpy's RSA is pure Python; the
private-key operation goes through `cryptography` (OpenSSL). Canonicalisation follows
RFC 6376 section 3.4 (relaxed header and body), Ed25519 follows RFC 8463 (the SHA-256 of
the data is signed). Verification stays with dkimpy (stages/dkim_verify.py).
Key files: `DOMAIN.SELECTOR.key` in `dkim_key_directory`: PEM (RSA or Ed25519, PKCS#1 or
PKCS#8) or dkimpy's raw base64 Ed25519 seed.
Talks to: the file system (key files). Tests: tests/milters/test_units.py (canonicalisation, key
files, genkey), tests/milters/test_auth_stages.py (dkimpy verifies what we sign),
tests/milters/test_dkim_interop.py (OpenDKIM verifies what we sign).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

_WSP_RUN = re.compile(rb"[ \t]+")
_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                        r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_SELECTOR_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62})$")


# --- canonicalisation (RFC 6376 3.4.2, 3.4.4) -------------------------------------------

def relaxed_header(name: bytes, value: bytes) -> bytes:
    """`name:value` in relaxed form, without CRLF."""
    value = value.replace(b"\r\n", b"").replace(b"\n", b"")
    value = _WSP_RUN.sub(b" ", value).strip(b" ")
    return name.strip().lower() + b":" + value


def relaxed_body_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Relaxed body canonicalisation over a stream of chunks (CRLF or bare LF line ends)."""
    pending_empty = 0
    partial = b""
    for chunk in chunks:
        data = partial + chunk
        lines = data.split(b"\n")
        partial = lines.pop()
        out = []
        for line in lines:
            line = _WSP_RUN.sub(b" ", line.rstrip(b"\r")).rstrip(b" ")
            if not line:
                pending_empty += 1
                continue
            out.append(b"\r\n" * pending_empty + line + b"\r\n")
            pending_empty = 0
        if out:
            yield b"".join(out)
    if partial:
        line = _WSP_RUN.sub(b" ", partial.rstrip(b"\r")).rstrip(b" ")
        if line:
            yield b"\r\n" * pending_empty + line + b"\r\n"


def body_hash(chunks: Iterable[bytes]) -> bytes:
    h = hashlib.sha256()
    for part in relaxed_body_chunks(chunks):
        h.update(part)
    return base64.b64encode(h.digest())


# --- keys -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SigningKey:
    domain: str
    selector: str
    algorithm: str          # "rsa-sha256" or "ed25519-sha256"
    key: Any                # a cryptography private key
    bits: int

    def sign(self, data: bytes) -> bytes:
        if self.algorithm == "rsa-sha256":
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import padding
            return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return self.key.sign(hashlib.sha256(data).digest())


def load_key(path: str, domain: str, selector: str, min_rsa_bits: int = 1024) -> SigningKey:
    """Read a key file; raise ValueError saying what is wrong."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
    with open(path, "rb") as f:
        data = f.read()
    if b"-----BEGIN" in data:
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path}: not a usable PEM private key: {e}") from None
    else:
        try:
            seed = base64.b64decode(data.strip(), validate=True)
        except ValueError:
            raise ValueError(f"{path}: neither PEM nor a base64 Ed25519 seed") from None
        if len(seed) != 32:
            raise ValueError(f"{path}: a base64 Ed25519 key must hold 32 bytes, got {len(seed)}")
        key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < min_rsa_bits:
            raise ValueError(f"{path}: RSA key of {key.key_size} bits; at least {min_rsa_bits} required")
        return SigningKey(domain, selector, "rsa-sha256", key, key.key_size)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return SigningKey(domain, selector, "ed25519-sha256", key, 256)
    raise ValueError(f"{path}: unsupported key type {type(key).__name__} (RSA or Ed25519)")


def public_txt(key: Any) -> str:
    """The DNS TXT value publishing the public half of a private key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    pub = key.public_key()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return "v=DKIM1; k=ed25519; p=" + base64.b64encode(raw).decode()
    der = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def zone_record(domain: str, selector: str, txt: str) -> str:
    """A zone-file line, the TXT value split into strings of at most 255 characters."""
    parts = [txt[i:i + 250] for i in range(0, len(txt), 250)]
    quoted = "\n\t".join(f'"{p}"' for p in parts)
    return f"{selector}._domainkey.{domain}. IN TXT (\n\t{quoted} )"


def key_path(directory: str, domain: str, selector: str) -> str:
    return os.path.join(directory, f"{domain.lower()}.{selector}.key")


def generate(domain: str, selector: str, directory: str, *, algorithm: str = "rsa",
             bits: int = 2048, force: bool = False) -> tuple[str, str]:
    """Write a new private key (mode 0600, atomically); return (path, zone record)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
    if not _DOMAIN_RE.match(domain):
        raise ValueError(f"bad domain {domain!r}")
    if not _SELECTOR_RE.match(selector):
        raise ValueError(f"bad selector {selector!r}")
    if algorithm == "rsa":
        if bits < 1024 or bits > 8192:
            raise ValueError("RSA key size must be from 1024 to 8192 bits (2048 recommended)")
        key: Any = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    elif algorithm == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    else:
        raise ValueError(f"unknown key type {algorithm!r} (rsa or ed25519)")
    os.makedirs(directory, mode=0o750, exist_ok=True)
    path = key_path(directory, domain, selector)
    if os.path.exists(path) and not force:
        raise FileExistsError(f"{path} exists (use --force to replace it)")
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path, zone_record(domain, selector, public_txt(key))


# --- signing ----------------------------------------------------------------------------

def select_headers(headers: list[tuple[bytes, bytes]], sign: Iterable[str],
                   oversign: Iterable[str]) -> list[bytes]:
    """The h= list: each wanted name once per occurrence, plus once more when oversigned."""
    present: dict[bytes, int] = {}
    for name, _ in headers:
        present[name.lower()] = present.get(name.lower(), 0) + 1
    over = {o.lower().encode() for o in oversign}
    out = []
    for want in sign:
        w = want.lower().encode()
        count = present.get(w, 0) + (1 if w in over else 0)
        out += [w] * count
    return out


def hashed_headers(headers: list[tuple[bytes, bytes]], h_list: list[bytes]) -> bytes:
    """Canonical header data for h= (instances taken from the bottom up, RFC 6376 5.4.2)."""
    remaining: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        remaining.setdefault(name.lower(), []).append(value)
    out = []
    for name in h_list:
        values = remaining.get(name)
        if values:
            out.append(relaxed_header(name, values.pop()) + b"\r\n")
        # a name with no instance left (oversigning) contributes nothing
    return b"".join(out)


def sign(key: SigningKey, headers: list[tuple[bytes, bytes]], bh: bytes, h_list: list[bytes],
         now: float | None = None) -> str:
    """The DKIM-Signature header value (folded with LF+tab) for the given headers and body hash."""
    t = int(time.time() if now is None else now)
    tags = [("v", "1"), ("a", key.algorithm), ("c", "relaxed/relaxed"), ("d", key.domain),
            ("s", key.selector), ("t", str(t)), ("h", ":".join(n.decode() for n in h_list)),
            ("bh", bh.decode())]
    value_no_b = "; ".join(f"{k}={v}" for k, v in tags) + "; b="
    data = hashed_headers(headers, h_list) + relaxed_header(b"DKIM-Signature", value_no_b.encode())
    b = base64.b64encode(key.sign(data)).decode()
    # Fold for line length; relaxed canonicalisation makes the folding irrelevant.
    return (f"v=1; a={key.algorithm}; c=relaxed/relaxed; d={key.domain}; s={key.selector}; t={t};\n"
            f"\th={':'.join(n.decode() for n in h_list)};\n\tbh={bh.decode()};\n\tb=" + _fold(b))


def _fold(b: str, width: int = 72) -> str:
    return "\n\t ".join(b[i:i + width] for i in range(0, len(b), width))
