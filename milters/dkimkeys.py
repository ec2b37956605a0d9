"""DKIM keys and signing: key files, `owlery dkim genkey`, and relaxed/relaxed signatures.

Signing is done here rather than by dkimpy because dkimpy's RSA is pure Python; the
private-key operation goes through `cryptography` (OpenSSL). Canonicalisation follows
RFC 6376 section 3.4 (relaxed header and body), Ed25519 follows RFC 8463 (the SHA-256 of
the data is signed). Verification stays with dkimpy (stages/dkim_verify.py).
Key files: `DOMAIN.SELECTOR.key` in `dkim_key_directory`: PEM (RSA or Ed25519, PKCS#1 or
PKCS#8) or dkimpy's raw base64 Ed25519 seed. A key must belong to root or the milter's user
and be unreadable by others (refused at start, with the path and the reason); a key its group
may read is accepted with a warning unless that group is the milter's. `genkey` writes mode
0600, owned by the milter's user (daemon_user, or --owner) when run as root: the milter
alone reads it, and no group membership (the milter runs with group postfix) extends that.
Talks to: the file system (key files). Tests: tests/milters/test_units.py (canonicalisation, key
files, genkey), tests/milters/test_auth_stages.py (dkimpy verifies what we sign),
tests/milters/test_dkim_interop.py (OpenDKIM verifies what we sign), tests/milters/test_sign_differential.py
(odd messages: OpenDKIM, Rspamd and an RFC reading verify what we sign; line widths), tests/milters/test_low_hardening.py
(key owner and mode at load and from genkey).
"""

from __future__ import annotations

import base64
import dataclasses
import grp
import hashlib
import logging
import os
import pwd
import re
import stat
import time
from collections.abc import Iterable, Iterator
from typing import Any

_WSP_RUN = re.compile(rb"[ \t]+")
_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                        r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_SELECTOR_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62})$")

log = logging.getLogger("owlery.milter")


# --- canonicalisation (RFC 6376 3.4.2, 3.4.4) -------------------------------------------

def relaxed_header(name: bytes, value: bytes) -> bytes:
    """`name:value` in relaxed form, without CRLF."""
    value = value.replace(b"\r\n", b"").replace(b"\n", b"")
    value = _WSP_RUN.sub(b" ", value).strip(b" ")
    return name.strip().lower() + b":" + value


def relaxed_body_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Relaxed body canonicalisation over a stream of chunks (CRLF or bare LF line ends).

    Only the CR of a line's CRLF goes: a lone CR before it is line content (not WSP, RFC 6376
    3.4.4), as is a CR at the very end of a body without a final line end."""
    pending_empty = 0
    partial = b""
    for chunk in chunks:
        data = partial + chunk
        lines = data.split(b"\n")
        partial = lines.pop()
        out = []
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            line = _WSP_RUN.sub(b" ", line).rstrip(b" ")
            if not line:
                pending_empty += 1
                continue
            out.append(b"\r\n" * pending_empty + line + b"\r\n")
            pending_empty = 0
        if out:
            yield b"".join(out)
    if partial:
        line = _WSP_RUN.sub(b" ", partial).rstrip(b" ")
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


@dataclasses.dataclass(frozen=True)
class KeyOwner:
    """Who may own a key file besides root (`uid`) and whose group may read it (`gid`): the milter."""

    uid: int
    gid: int

    @classmethod
    def for_daemon(cls, user: str | None, group: str | None) -> "KeyOwner":
        """The daemon's identity: `user`/`group` (daemon_user, daemon_group; group unset: the
        user's primary group), or, with no user, this process's own."""
        if user is None:
            return cls(os.geteuid(), os.getegid() if group is None else _gid(group))
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            raise ValueError(f"daemon_user {user!r}: no such user") from None
        return cls(pw.pw_uid, pw.pw_gid if group is None else _gid(group))

    @classmethod
    def from_settings(cls, settings: Any) -> "KeyOwner":
        return cls.for_daemon(settings.daemon_user, settings.daemon_group)


def _gid(group: str) -> int:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ValueError(f"daemon_group {group!r}: no such group") from None


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return f"gid {gid}"


def check_key_file(path: str, st: os.stat_result, owner: KeyOwner) -> None:
    """Refuse (ValueError) a key file others may read or write, or that belongs to a user other
    than root and the daemon's; log a warning when a group other than the daemon's may read it."""
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{path}: not a regular file")
    if mode & (stat.S_IROTH | stat.S_IWOTH):
        raise ValueError(f"{path}: unsafe key file: mode {mode:04o} lets others "
                         f"{'read' if mode & stat.S_IROTH else 'write'} it (chmod 0600 and chown it "
                         "to the milter's user)")
    if st.st_uid not in (0, owner.uid):
        raise ValueError(f"{path}: unsafe key file: owned by {user_name(st.st_uid)}, neither root nor the "
                         f"milter's user {user_name(owner.uid)} (chown it, mode 0600)")
    if mode & (stat.S_IRGRP | stat.S_IWGRP) and st.st_gid != owner.gid:
        log.warning("milter: DKIM key %s (mode %04o) is open to group %s, which is not the "
                    "milter's (%s); chmod 0600 unless that is intended", path, mode,
                    _group_name(st.st_gid), _group_name(owner.gid))


def load_key(path: str, domain: str, selector: str, min_rsa_bits: int = 1024, *,
             owner: KeyOwner | None = None) -> SigningKey:
    """Read a key file; raise ValueError saying what is wrong (including an unsafe owner or mode,
    judged for `owner`: the daemon, by default this process)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())            # the file read, judged once its content is known good
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
        signing = SigningKey(domain, selector, "rsa-sha256", key, key.key_size)
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        signing = SigningKey(domain, selector, "ed25519-sha256", key, 256)
    else:
        raise ValueError(f"{path}: unsupported key type {type(key).__name__} (RSA or Ed25519)")
    check_key_file(path, st, owner if owner is not None else KeyOwner.for_daemon(None, None))
    return signing


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
             bits: int = 2048, force: bool = False, owner: str | None = None,
             group: str | None = None) -> tuple[str, str]:
    """Write a new private key (mode 0600, atomically); return (path, zone record).

    `owner` (run as root): the user the key (and a directory made for it) is given to, so that
    the milter running as that user reads it; `group` is recorded as the file's group (default
    the user's primary group) but gets no access."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
    if not _DOMAIN_RE.match(domain):
        raise ValueError(f"bad domain {domain!r}")
    if not _SELECTOR_RE.match(selector):
        raise ValueError(f"bad selector {selector!r}")
    ids = _owner_ids(owner, group)
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
    _make_key_directory(directory, ids)
    path = key_path(directory, domain, selector)
    if os.path.exists(path) and not force:
        raise FileExistsError(f"{path} exists (use --force to replace it)")
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)          # whatever the umask
            if ids is not None:
                os.fchown(f.fileno(), *ids)
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path, zone_record(domain, selector, public_txt(key))


def _owner_ids(owner: str | None, group: str | None) -> tuple[int, int] | None:
    """(uid, gid) to give new files to; None: leave them to the process."""
    if owner is None:
        return None
    ids = KeyOwner.for_daemon(owner, group)
    if (ids.uid, ids.gid) == (os.geteuid(), os.getegid()):
        return None
    if os.geteuid() != 0:
        raise ValueError(f"only root can write a key owned by {owner} (run it as {owner}, or as root)")
    return ids.uid, ids.gid


def _make_key_directory(directory: str, ids: tuple[int, int] | None) -> None:
    """Create the key directory (0700, for the key's owner) unless it exists."""
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        return
    except FileNotFoundError:
        os.makedirs(os.path.dirname(os.path.abspath(directory)), mode=0o755, exist_ok=True)
        os.mkdir(directory, 0o700)
    os.chmod(directory, 0o700)
    if ids is not None:
        os.chown(directory, *ids)


def can_reach(path: str, uid: int, gid: int) -> bool:
    """Whether user `uid` (primary group `gid`, plus its supplementary groups) may search every
    directory on the way to `path` (a simple mode-bit check, no ACLs)."""
    if uid == 0:
        return True
    groups = {gid}
    try:
        groups.update(os.getgrouplist(pwd.getpwuid(uid).pw_name, gid))
    except (KeyError, OSError):
        pass
    d = os.path.dirname(os.path.abspath(path))
    while True:
        try:
            st = os.stat(d)
        except OSError:
            return False
        bit = (stat.S_IXUSR if st.st_uid == uid else stat.S_IXGRP if st.st_gid in groups else stat.S_IXOTH)
        if not st.st_mode & bit:
            return False
        if d == "/":
            return True
        d = os.path.dirname(d)


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


LINE_WIDTH = 78     # RFC 5322 2.1.1: lines SHOULD be at most 78 octets (998 at most)


def sign(key: SigningKey, headers: list[tuple[bytes, bytes]], bh: bytes, h_list: list[bytes],
         now: float | None = None) -> str:
    """The DKIM-Signature header value (folded with LF+tab) for the given headers and body hash."""
    t = int(time.time() if now is None else now)
    tags = [("v", "1"), ("a", key.algorithm), ("c", "relaxed/relaxed"), ("d", key.domain),
            ("s", key.selector), ("t", str(t)), ("h", ":".join(n.decode() for n in h_list)),
            ("bh", bh.decode())]
    head = fold_tags("DKIM-Signature", tags)
    # b= goes on a line of its own, so the value signed (b= empty) is the header as sent
    # without the b= value; relaxed canonicalisation turns each fold into one space.
    value_no_b = head + ";\n\tb="
    data = hashed_headers(headers, h_list) + relaxed_header(b"DKIM-Signature", value_no_b.encode())
    b = base64.b64encode(key.sign(data)).decode()
    return value_no_b + _fold(b, LINE_WIDTH - 3, LINE_WIDTH - 2)


def fold_tags(name: str, tags: list[tuple[str, str]]) -> str:
    """`k=v` tags joined by "; " and folded (LF + tab) so that, with "Name: " before the first,
    no line passes LINE_WIDTH: between tags, or inside a long h= after a ':' (RFC 6376 3.5 allows
    FWS there). A single name or domain longer than a line stays whole (under 998 octets)."""
    lines = [""]
    col = len(name) + 2
    for i, (k, v) in enumerate(tags):
        end = "" if i == len(tags) - 1 else ";"
        pieces = [f"{k}={v}{end}"]
        if k == "h" and col + 1 + len(pieces[0]) > LINE_WIDTH:
            names = v.split(":")
            pieces = [f"{n}:" for n in names[:-1]] + [names[-1] + end]
            pieces[0] = "h=" + pieces[0]
        for j, piece in enumerate(pieces):
            sep = " " if (i and j == 0) else ""
            if lines[-1] and col + len(sep) + len(piece) > LINE_WIDTH:
                lines.append("")
                col, sep = 1, ""
            lines[-1] += sep + piece
            col += len(sep) + len(piece)
    return "\n\t".join(lines)


def _fold(b: str, first: int, width: int) -> str:
    """Base64 text in lines of `width` (the first of `first`), joined by LF + tab + space."""
    parts = [b[:first]] + [b[i:i + width] for i in range(first, len(b), width)]
    return "\n\t ".join(p for p in parts if p)
