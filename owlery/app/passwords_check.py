"""What `owlery config check` says about files_passwords: a file that cannot be read, entries that never log in.

ManageSieve and the web application check logins against this Dovecot passwd-file; neither
refuses to start without it, and a login it refuses is logged as `result=failed` only, so a
missing file or a `{PLAIN}` entry (accepted by Dovecot, refused here unless
files_passwords_plain) looks like a wrong password. The check names the setting, the file and
the lines. Talks to: the passwords file (read only).
Tests: tests/core/test_newcomer_s21.py
"""

from __future__ import annotations

from typing import Any

MAX_LINES_NAMED = 5


def password_file_findings(settings: Any) -> tuple[list[str], list[str]]:
    """(errors, warnings) about settings.files_passwords, one line each; nothing for LDAP or no file."""
    if settings.directory_backend != "files" or not settings.files_passwords:
        return [], []
    from owlery.directory.auth import HASH_SCHEMES, PLAIN_SCHEMES, split_scheme
    path = settings.files_passwords
    where = _where(settings, "files_passwords")
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except OSError as e:
        return [f"files_passwords ({where}): cannot read {path}: {e.strerror or e}; ManageSieve and "
                "the web application would refuse every login"], []
    plain, unknown = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) < 2 or not fields[0]:
            continue                                    # the reader logs these itself
        scheme, _ = split_scheme(fields[1])
        if scheme in PLAIN_SCHEMES:
            plain.append(number)
        elif scheme not in HASH_SCHEMES:
            unknown.append((number, scheme))
    warnings = []
    if plain and not settings.files_passwords_plain:
        warnings.append(f"{path}: {_lines(plain)} {{PLAIN}} password(s), which never log in while "
                        f"files_passwords_plain is false ({_where(settings, 'files_passwords_plain')}): "
                        "store {SHA512-CRYPT} hashes (doveadm pw -s SHA512-CRYPT) or set it to true")
    if unknown:
        schemes = sorted({s or "none" for _, s in unknown})
        warnings.append(f"{path}: {_lines([n for n, _ in unknown])} password(s) of a scheme Owlery does not "
                        f"check ({', '.join(schemes)}; it checks {', '.join(HASH_SCHEMES)}): they never log in")
    return [], warnings


def _lines(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:MAX_LINES_NAMED])
    more = f" and {len(numbers) - MAX_LINES_NAMED} more" if len(numbers) > MAX_LINES_NAMED else ""
    return f"line{'s' if len(numbers) > 1 else ''} {shown}{more}:"


def _where(settings: Any, name: str) -> str:
    line = settings.line_of(name) if hasattr(settings, "line_of") else None
    return f"{settings.path}:{line}" if line and settings.path else "default"
