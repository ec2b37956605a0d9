"""The socketmap tables: map name + key + directory -> SocketmapAnswer, as the Postfix parameter it feeds expects.

Postfix asks a socketmap (like regexp: and pcre:) with the FULL key only: user+ext@domain,
never user@domain or @domain after it, and a domain only as itself. So every address map
here applies the directory's lookup order itself (user+ext@domain, user@domain, @domain,
the order resolve() uses), and answers the same for every Postfix lookup of the address.
Postfix also asks virtual_alias_maps for bare domains (virtual_alias_domains defaults to
$virtual_alias_maps: set it empty) and transport_maps for "*": both NOTFOUND.

  virtual_mailbox_domains  domain -> OK when hosted ("OK" as data; Postfix only asks found/not).
  virtual_alias_maps       address the policy daemon accepts (it exists, and an alias reaches a
                           mailbox or a remote address: no backscatter through aliases) -> one
                           step of expansion (Directory.expand_once), the first key that
                           matches; a mailbox answers its own address (Postfix stops
                           recursing there, and a catch-all never hides it); an alias its targets:
                           @other.domain targets become user+ext@other.domain (a domain alias),
                           and a match on user@domain passes +ext on to the targets when
                           socketmap_propagate_unmatched_extensions (Postfix's own rule for its
                           tables). Postfix recurses on the targets itself. A group without
                           members answers NOTFOUND.
  virtual_mailbox_maps     address -> the Maildir path relative to socketmap_mailbox_base, with
                           a trailing "/" (Maildir format for virtual(8)): the directory's maildir,
                           else maildir_path_template filled in, as Owlery's lmtpd would deliver.
                           Only for an address that is a mailbox (or an alias that includes itself).
  transport_maps           address of a mailbox -> socketmap_transport_template with its mail host
                           (Mailbox.mail_host), socketmap_transport_default when it has none (or a
                           host of socketmap_transport_local_hosts); empty default: NOTFOUND.
  relay_recipient_maps     address -> OK when the policy daemon accepts it (as above);
                           @domain -> OK when the domain has a catch-all.

A directory that cannot answer (DirectoryUnavailable) gives TEMP, never NOTFOUND, and so
does a reply longer than socketmap_reply_length_max (Postfix would refuse it); an
unknown map name gives PERM. A key that is no address (control characters, no @) is
NOTFOUND without asking the directory. `lookup()` is pure: the adapter passes the cached
directory (socketmap/service.py); a non-blocking view of it raises CacheMiss through.
Talks to: the directory (owlery/directory). Tests: tests/socketmap/test_maps.py,
tests/socketmap/test_postmap.py (the same answers through Postfix's postmap)
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Callable
from typing import Any

from owlery.directory.base import Address, Mailbox, Recipient, parse_address
from owlery.errors import TemporaryFailure
from owlery.maildir import MaildirError, path_for
from socketmap.protocol import NOTFOUND, SocketmapAnswer, ok, perm, temp

log = logging.getLogger("owlery.socketmap")

# A key with a control character, or longer than any address, is no address of ours.
_BAD_KEY = re.compile(r"[\x00-\x1f\x7f]")
# One target in a comma-separated list: no separator or control character inside.
_BAD_TARGET = re.compile(r"[\s,\x00-\x1f\x7f]")


@dataclasses.dataclass(frozen=True)
class TableConfig:
    """What the tables read from settings, checked once (ValueError on a bad template)."""

    delimiters: str
    case_sensitive: bool
    mailbox_base: str
    maildir_template: str
    transport_template: str
    transport_default: str
    transport_local_hosts: frozenset[str]
    propagate_extensions: bool
    reply_length_max: int = 100_000

    @classmethod
    def from_settings(cls, s: Any) -> "TableConfig":
        template = s.socketmap_transport_template
        if "{host}" not in template or _BAD_TARGET.search(template):
            raise ValueError(f"socketmap_transport_template {template!r} must hold {{host}} and no space")
        if _BAD_TARGET.search(s.socketmap_transport_default):
            raise ValueError(f"socketmap_transport_default {s.socketmap_transport_default!r} holds a space or comma")
        if not os.path.isabs(s.socketmap_mailbox_base):
            raise ValueError(f"socketmap_mailbox_base {s.socketmap_mailbox_base!r} is not an absolute path")
        return cls(delimiters=s.directory_recipient_delimiter,
                   case_sensitive=s.directory_local_part_case_sensitive,
                   mailbox_base=os.path.normpath(s.socketmap_mailbox_base),
                   maildir_template=s.maildir_path_template,
                   transport_template=template,
                   transport_default=s.socketmap_transport_default,
                   transport_local_hosts=frozenset(h.strip("[]").lower().rstrip(".")
                                                   for h in s.socketmap_transport_local_hosts),
                   propagate_extensions=s.socketmap_propagate_unmatched_extensions,
                   reply_length_max=s.socketmap_reply_length_max)


def lookup(name: str, key: str, directory: Any, config: TableConfig) -> SocketmapAnswer:
    """The answer of map `name` for `key` (see the module docstring)."""
    table = TABLES.get(name)
    if table is None:
        return perm(f"unknown map {name[:64]!r}; known: {', '.join(TABLES)}")
    if _BAD_KEY.search(key):
        return NOTFOUND
    try:
        answer = table(key.strip(), directory, config)
    except TemporaryFailure as e:
        return temp(f"directory unavailable: {e}")
    size = len(answer.text.encode("utf-8", "surrogateescape")) + len(answer.status) + 1
    if size > config.reply_length_max:
        log.warning("socketmap: %s: %s: reply of %d bytes is over socketmap_reply_length_max (%d)",
                    name, key, size, config.reply_length_max)
        return temp(f"reply of {size} bytes is over socketmap_reply_length_max")
    return answer


def _address(key: str, config: TableConfig) -> Address | None:
    try:
        return parse_address(key, config.delimiters, config.case_sensitive)
    except ValueError:
        return None


def _at_domain(key: str) -> str | None:
    """`@domain` lower-cased, or None when the key is not of that form."""
    if key.startswith("@") and len(key) > 1 and "@" not in key[1:]:
        return key.lower().rstrip(".")
    return None


# -- virtual_mailbox_domains ---------------------------------------------------------

def virtual_mailbox_domains(key: str, directory: Any, config: TableConfig) -> SocketmapAnswer:
    domain = key.lower().rstrip(".")
    if not domain or "@" in domain or domain.startswith(".") or " " in domain:
        return NOTFOUND
    return ok("OK") if directory.hosts_domain(domain) else NOTFOUND


# -- virtual_alias_maps --------------------------------------------------------------

def virtual_alias_maps(key: str, directory: Any, config: TableConfig) -> SocketmapAnswer:
    at_domain = _at_domain(key)
    if at_domain is not None:            # asked by hand (postmap -q @domain): the entry itself
        targets = directory.expand_once(at_domain)
        return _targets_answer(key, targets) if targets else NOTFOUND
    a = _address(key, config)
    if a is None or not _accepted(directory.resolve(a.full)):
        return NOTFOUND
    for candidate in a.candidates():
        targets = directory.expand_once(candidate)
        if targets is None:
            continue
        if not targets:
            return NOTFOUND              # a group without members
        propagate = config.propagate_extensions and candidate == a.base != a.full
        return _targets_answer(key, [_rewrite(t, a, propagate) for t in targets])
    return NOTFOUND


def _accepted(r: Recipient) -> bool:
    """What the policy daemon accepts: an address that exists and reaches a mailbox or a remote
    address (an alias reaching nothing would only bounce later: backscatter)."""
    return r.exists and not getattr(r, "reaches_nothing", False)


def _rewrite(target: str, a: Address, propagate: bool) -> str:
    """A target as Postfix should receive it for address `a`."""
    if target.startswith("@"):
        # A domain alias (or a catch-all mailbox, which maps the address to itself).
        return f"{a.local}{a.delimiter}{a.detail}@{target[1:]}"
    if propagate:
        local, at, domain = target.rpartition("@")
        if at and local:
            return f"{local}{a.delimiter}{a.detail}@{domain}"
    return target


def _targets_answer(key: str, targets: list[str]) -> SocketmapAnswer:
    good = []
    for target in dict.fromkeys(targets):
        if _BAD_TARGET.search(target) or not target:
            log.warning("socketmap: virtual_alias_maps: %s: target %r skipped (space, comma or control "
                        "character)", key, target)
            continue
        good.append(target)
    return ok(",".join(good)) if good else NOTFOUND


# -- virtual_mailbox_maps / transport_maps / relay_recipient_maps ---------------------

def _own_mailbox(r: Recipient, a: Address) -> Mailbox | None:
    """The mailbox of the address itself: the one named like it, else the mailbox the address
    is (an alternate address, a catch-all); None for an alias that does not include itself."""
    if r.kind not in ("mailbox", "alias"):
        return None
    for box in r.mailboxes:
        if box.address in (a.full, a.base):
            return box
    if r.kind == "mailbox" and r.mailboxes:
        return r.mailboxes[0]
    return None


def _mailbox_of(key: str, directory: Any, config: TableConfig) -> tuple[Address, Mailbox] | None:
    a = _address(key, config)
    box = _own_mailbox(directory.resolve(a.full), a) if a is not None else None
    return (a, box) if box is not None else None


def virtual_mailbox_maps(key: str, directory: Any, config: TableConfig) -> SocketmapAnswer:
    found = _mailbox_of(key, directory, config)
    if found is None:
        return NOTFOUND
    a, box = found
    try:
        return ok(mailbox_path(box, a, config))
    except ValueError as e:
        log.warning("socketmap: virtual_mailbox_maps: %s: %s", key, e)
        return temp(str(e))


def mailbox_path(box: Mailbox, a: Address, config: TableConfig) -> str:
    """The Maildir of `box` relative to socketmap_mailbox_base, ending in "/"; ValueError when
    it cannot be said (outside the base, a name that cannot be a path)."""
    path = box.maildir
    if path is None:
        owner = a.base if box.address.startswith("@") else box.address
        try:
            path = path_for(config.maildir_template, owner)
        except MaildirError as e:
            raise ValueError(str(e)) from None
    if os.path.isabs(path):
        full = os.path.normpath(path)
        base = config.mailbox_base
        prefix = base if base.endswith("/") else base + "/"
        if not full.startswith(prefix):
            raise ValueError(f"Maildir {path} is outside socketmap_mailbox_base {base}")
        path = full[len(prefix):]
    rel = path.strip("/")
    if not rel or _BAD_TARGET.search(rel) or ".." in rel.split("/"):
        raise ValueError(f"Maildir path {path!r} cannot be given to Postfix")
    return rel + "/"


def transport_maps(key: str, directory: Any, config: TableConfig) -> SocketmapAnswer:
    found = _mailbox_of(key, directory, config)
    if found is None:
        return NOTFOUND
    host = found[1].mail_host
    if host:
        bare = host.strip("[]").lower().rstrip(".")
        if bare not in config.transport_local_hosts:
            if _BAD_TARGET.search(bare) or "/" in bare:
                log.warning("socketmap: transport_maps: %s: mail host %r cannot be a next hop", key, host)
                return temp(f"mail host {host!r} cannot be a next hop")
            named = f"[{bare}]" if ":" in bare else bare
            return ok(config.transport_template.replace("[{host}]", f"[{bare}]").replace("{host}", named))
    return ok(config.transport_default) if config.transport_default else NOTFOUND


def relay_recipient_maps(key: str, directory: Any, config: TableConfig) -> SocketmapAnswer:
    at_domain = _at_domain(key)
    if at_domain is not None:
        return ok("OK") if directory.expand_once(at_domain) is not None else NOTFOUND
    a = _address(key, config)
    if a is None:
        return NOTFOUND
    return ok("OK") if _accepted(directory.resolve(a.full)) else NOTFOUND


TABLES: dict[str, Callable[[str, Any, TableConfig], SocketmapAnswer]] = {
    "virtual_mailbox_domains": virtual_mailbox_domains,
    "virtual_mailbox_maps": virtual_mailbox_maps,
    "virtual_alias_maps": virtual_alias_maps,
    "transport_maps": transport_maps,
    "relay_recipient_maps": relay_recipient_maps,
}
