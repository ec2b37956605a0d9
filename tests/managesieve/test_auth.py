"""Password checks (owlery/directory/auth.py): Dovecot passwd-file hashes and LDAP binds.

Hashes come from Dovecot itself (`doveadm pw`, the tool admins fill passwd-files with) and
from the `bcrypt` package; SHA-crypt is checked against the C library's crypt(3) too. LDAP
runs against the real slapd of tests/harness (alice..frank, userPassword "<uid>pw").
"""

import shutil
import subprocess
import warnings

import pytest

from owlery.directory.auth import Authenticator, authenticate, check_password, sha_crypt, split_scheme
from owlery.errors import DirectoryUnavailable
from owlery.settings import Settings

DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"


def doveadm_pw(scheme: str, password: str) -> str:
    out = subprocess.run([DOVEADM, "pw", "-s", scheme, "-p", password], capture_output=True, text=True,
                         check=True, timeout=30)
    return out.stdout.strip()


@pytest.fixture(scope="module")
def dovecot_hashes():
    return {scheme: doveadm_pw(scheme, "correct horse") for scheme in
            ("SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "ARGON2ID", "PLAIN")}


@pytest.mark.parametrize("scheme", ["SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "ARGON2ID"])
def test_dovecot_hashes(dovecot_hashes, scheme):
    stored = dovecot_hashes[scheme]
    assert stored.startswith("{" + scheme + "}")
    assert check_password("correct horse", stored)
    assert not check_password("correct horsE", stored)
    assert not check_password("", stored)
    bare = split_scheme(stored)[1]              # Dovecot's CRYPT default: the hash without {SCHEME}
    assert check_password("correct horse", bare) and not check_password("wrong", bare)


def test_plain_only_when_allowed(dovecot_hashes):
    stored = dovecot_hashes["PLAIN"]
    assert stored == "{PLAIN}correct horse"
    assert not check_password("correct horse", stored)
    assert check_password("correct horse", stored, allow_plain=True)
    assert not check_password("correct horsE", stored, allow_plain=True)


@pytest.mark.parametrize("stored", ["{MD5-CRYPT}$1$abc$xyz", "{SHA}abc", "plaintext", "", "{SHA512-CRYPT}garbage",
                                    "{BLF-CRYPT}$2y$xx", "{ARGON2ID}$argon2id$v=19$broken"])
def test_unknown_or_broken_hashes_never_match(stored):
    assert not check_password("plaintext", stored) and not check_password("", stored)


@pytest.mark.parametrize("setting", ["$6$saltsalt", "$6$rounds=1000$0123456789abcdefghij", "$5$x",
                                     "$5$rounds=6000$saltysaltysalty", "$6$$"])
@pytest.mark.parametrize("password", ["", "secret", "p" * 200, "pässwörd ✓"])
def test_sha_crypt_matches_libc(setting, password):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    assert sha_crypt(password.encode(), setting) == crypt.crypt(password, setting)


def test_bcrypt_long_passwords_cut_at_72_bytes_like_dovecot():
    import bcrypt
    stored = "{BLF-CRYPT}" + bcrypt.hashpw(b"a" * 72, bcrypt.gensalt(4)).decode()
    assert check_password("a" * 80, stored)      # libxcrypt (Dovecot) ignores bytes past 72 too


def files_settings(path, **over):
    return Settings().replace(directory_backend="files", files_passwords=str(path), **over)


def test_passwd_file(tmp_path, dovecot_hashes):
    path = tmp_path / "passwd"
    path.write_text("# Dovecot passwd-file\n\n"
                    f"alice@Example.ORG:{dovecot_hashes['SHA512-CRYPT']}:1000:1000::/home/alice::\n"
                    f"bob@example.org:{dovecot_hashes['BLF-CRYPT']}\n"
                    f"carol@example.org:{dovecot_hashes['PLAIN']}:::\n"
                    "dave@example.org::1000:1000\n"
                    "broken line\n")
    auth = Authenticator(files_settings(path))
    assert auth.authenticate("alice@example.org", "correct horse") == "alice@example.org"
    assert auth.authenticate("ALICE@example.org", "correct horse") == "alice@example.org"
    assert auth.authenticate("bob@example.org", "correct horse") == "bob@example.org"
    assert auth.authenticate("alice@example.org", "wrong") is None
    assert auth.authenticate("carol@example.org", "correct horse") is None        # {PLAIN} not allowed
    assert auth.authenticate("dave@example.org", "") is None                      # no password: no login
    assert auth.authenticate("nobody@example.org", "correct horse") is None
    assert auth.authenticate("alice@example.org\n", "correct horse") is None
    plain_ok = Authenticator(files_settings(path, files_passwords_plain=True))
    assert plain_ok.authenticate("carol@example.org", "correct horse") == "carol@example.org"


def test_passwd_file_is_reread_when_it_changes(tmp_path):
    path = tmp_path / "passwd"
    path.write_text(f"alice@example.org:{{SHA512-CRYPT}}{sha_crypt(b'one', '$6$aaaa')}\n")
    auth = Authenticator(files_settings(path))
    assert auth.authenticate("alice@example.org", "one")
    path.write_text(f"alice@example.org:{{SHA512-CRYPT}}{sha_crypt(b'two', '$6$bbbb')}\n")
    assert auth.authenticate("alice@example.org", "one") is None
    assert auth.authenticate("alice@example.org", "two") == "alice@example.org"


def test_missing_passwd_file_is_unavailable(tmp_path):
    with pytest.raises(DirectoryUnavailable):
        authenticate(files_settings(tmp_path / "nope"), "alice@example.org", "x")


def test_no_passwd_file_configured_nobody_logs_in():
    assert authenticate(Settings(), "alice@example.org", "x") is None


def ldap_settings(slapd, **over):
    return Settings().replace(directory_backend="ldap", ldap_servers=[slapd.url], ldap_base_dn=slapd.base_dn,
                              ldap_timeout=2, ldap_connect_timeout=1, **over)


@pytest.mark.parametrize("user,password,expected", [
    ("alice@example.test", "alicepw", "alice@example.test"),
    ("Alice@Example.Test", "alicepw", "alice@example.test"),
    ("alice@example.test", "bobpw", None),
    ("alice@example.test", "", None),                # would be an anonymous bind: refused before
    ("bob@example.test", "bobpw", "bob@example.test"),
    ("dave@example.test", "davepw", None),           # accountStatus disabled
    ("csall@example.test", "x", None),               # a group
    ("postmaster@example.test", "alicepw", None),     # an alternate address is not a login name
    ("nobody@example.test", "x", None),
    ("*", "alicepw", None),                          # filter characters are escaped
    ("alice@example.test)(uid=*", "alicepw", None),
])
def test_ldap_bind(slapd, user, password, expected):
    assert authenticate(ldap_settings(slapd), user, password) == expected


def test_ldap_with_a_bind_dn_for_the_search(slapd):
    settings = ldap_settings(slapd, ldap_bind_dn=slapd.admin_dn, ldap_bind_password=slapd.admin_password)
    assert authenticate(settings, "erin@example.test", "erinpw") == "erin@example.test"


def test_ldap_down_is_unavailable(make_slapd):
    server = make_slapd()
    auth = Authenticator(ldap_settings(server))
    assert auth.authenticate("alice@example.test", "alicepw") == "alice@example.test"
    server.stop()
    with pytest.raises(DirectoryUnavailable):
        auth.authenticate("alice@example.test", "alicepw")
    server.start()
    assert auth.authenticate("alice@example.test", "alicepw") == "alice@example.test"
    auth.close()


@pytest.mark.parametrize("user", ["nobody@example.test", "dave@example.test", "csall@example.test"])
def test_ldap_binds_for_a_login_that_does_not_exist_too(slapd, monkeypatch, user):
    """No such login, a disabled one or a group: one bind all the same (slapd answers 49 for a DN
    no entry has), so a wrong password and an unknown address take the same steps and time."""
    binds = []
    real = Authenticator._ldap_bind

    def recording(self, dn, password):
        binds.append((dn, real(self, dn, password)))
        return binds[-1][1]

    monkeypatch.setattr(Authenticator, "_ldap_bind", recording)
    assert authenticate(ldap_settings(slapd), user, "some-password") is None
    assert len(binds) == 1 and binds[0][1] is False, binds
    assert binds[0][0].endswith("," + slapd.base_dn)
    binds.clear()
    assert authenticate(ldap_settings(slapd), "alice@example.test", "wrong") is None
    assert len(binds) == 1 and binds[0][1] is False
