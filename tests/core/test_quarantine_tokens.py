"""Quarantine link tokens (owlery.quarantine.tokens) and their key file (owlery.quarantine.tokenkey)."""

from __future__ import annotations

import base64
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from owlery.quarantine import ID_ALPHABET, ID_LENGTH, new_id
from owlery.quarantine.tokenkey import TokenKeyError, generate_key_file, read_key
from owlery.quarantine.tokens import ACTIONS, BadToken, Claims, sign, verify

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
QID = "abcdefghijkmnpq"
RCPT = "alice@example.org"
NOW = 1_700_000_000
LATER = NOW + 86400


def _raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_round_trip_is_url_safe_and_compact():
    token = sign(KEY, "release", QID, RCPT, LATER)
    assert verify(KEY, token, NOW, "release") == Claims("release", QID, RCPT, LATER)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert len(token) < 100


@pytest.mark.parametrize("position", range(len(sign(KEY, "release", QID, RCPT, LATER))))
def test_changing_any_character_of_the_token_fails(position):
    token = sign(KEY, "release", QID, RCPT, LATER)
    for replacement in ("A", "z", "-", "_", "0"):
        if token[position] == replacement:
            continue
        tampered = token[:position] + replacement + token[position + 1:]
        with pytest.raises(BadToken) as e:
            verify(KEY, tampered, NOW, "release")
        assert e.value.reason in ("forged", "malformed")


@pytest.mark.parametrize("position", range(len(_raw(sign(KEY, "release", QID, RCPT, LATER)))))
def test_flipping_any_bit_of_any_byte_fails_as_forged(position):
    raw = bytearray(_raw(sign(KEY, "release", QID, RCPT, LATER)))
    for bit in range(8):
        raw[position] ^= 1 << bit
        with pytest.raises(BadToken) as e:
            verify(KEY, _b64(bytes(raw)), NOW, "release")
        assert e.value.reason == "forged"
        raw[position] ^= 1 << bit


def test_the_mac_of_one_message_and_recipient_does_not_cover_another():
    """Re-encoding the claims for another recipient or message, with the old MAC, is forgery."""
    token = sign(KEY, "release", QID, RCPT, LATER)
    mac = _raw(token)[-16:]
    for other in (sign(KEY, "release", QID, "mallory@example.org", LATER),
                  sign(KEY, "release", "bcdefghijkmnpqr", RCPT, LATER),
                  sign(KEY, "release", QID, RCPT, LATER + 1),
                  sign(KEY, "show", QID, RCPT, LATER)):
        forged = _b64(_raw(other)[:-16] + mac)
        with pytest.raises(BadToken, match="forged"):
            verify(KEY, forged, NOW, "release")


def test_another_key_is_forged():
    with pytest.raises(BadToken, match="forged"):
        verify(OTHER_KEY, sign(KEY, "show", QID, RCPT, LATER), NOW, "show")


def test_expiry_is_exclusive():
    token = sign(KEY, "show", QID, RCPT, LATER)
    assert verify(KEY, token, LATER - 1, "show").expires == LATER
    for now in (LATER, LATER + 1):
        with pytest.raises(BadToken) as e:
            verify(KEY, token, now, "show")
        assert e.value.reason == "expired"


def test_a_show_token_does_not_release():
    with pytest.raises(BadToken) as e:
        verify(KEY, sign(KEY, "show", QID, RCPT, LATER), NOW, "release")
    assert e.value.reason == "wrong action"


@pytest.mark.parametrize("token", ["", "!!!!", "a" * 5000, "abc=", "ab cd", "AAAA", "é", "A"])
def test_malformed_tokens(token):
    with pytest.raises(BadToken) as e:
        verify(KEY, token, NOW, "release")
    assert e.value.reason == "malformed"


def test_a_non_canonical_spelling_of_a_valid_token_is_refused():
    token = sign(KEY, "release", QID, RCPT, LATER)
    raw = _raw(token)
    assert len(raw) % 3, "needs unused bits in the last character"
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    variant = token[:-1] + alphabet[last ^ 1]
    assert _raw(variant) == raw           # the decoder alone would accept it
    with pytest.raises(BadToken, match="malformed"):
        verify(KEY, variant, NOW, "release")


@pytest.mark.parametrize("args", [
    (b"short", "release", QID, RCPT, LATER),
    (KEY, "delete", QID, RCPT, LATER),
    (KEY, "release", "", RCPT, LATER),
    (KEY, "release", QID, "", LATER),
    (KEY, "release", QID, RCPT, -1),
])
def test_sign_refuses_bad_arguments(args):
    with pytest.raises(ValueError):
        sign(*args)


@given(action=st.sampled_from(sorted(ACTIONS)),
       qid=st.text(ID_ALPHABET, min_size=ID_LENGTH, max_size=ID_LENGTH),
       rcpt=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=200),
       expires=st.integers(1, 2 ** 63), key=st.binary(min_size=16, max_size=64))
def test_hypothesis_round_trip(action, qid, rcpt, expires, key):
    token = sign(key, action, qid, rcpt, expires)
    assert verify(key, token, expires - 1, action) == Claims(action, qid, rcpt, expires)


# --- the key file --------------------------------------------------------------------------

def test_generated_key_file_is_private_and_readable_back(tmp_path):
    path = tmp_path / "q.key"
    generate_key_file(str(path), None)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = read_key(str(path))
    assert len(key) == 32
    assert verify(key, sign(key, "show", new_id(), RCPT, LATER), NOW, "show")
    with pytest.raises(TokenKeyError, match="exists"):
        generate_key_file(str(path), None)
    generate_key_file(str(path), None, force=True)
    assert read_key(str(path)) != key
    assert [p.name for p in tmp_path.iterdir()] == ["q.key"]


def test_a_world_readable_key_file_is_refused_without_showing_the_key(tmp_path):
    path = tmp_path / "q.key"
    path.write_text(KEY.hex() + "\n")
    path.chmod(0o644)
    with pytest.raises(TokenKeyError) as e:
        read_key(str(path))
    assert "others" in str(e.value) and KEY.hex() not in str(e.value)
    path.chmod(0o640)
    assert read_key(str(path)) == KEY


@pytest.mark.parametrize("content", ["", "not hex\n", "00ff\n"])
def test_bad_key_files(tmp_path, content):
    path = tmp_path / "q.key"
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(TokenKeyError):
        read_key(str(path))


def test_cli_token_key_generate(tmp_path, capsys):
    from owlery.app.cli import main
    path = tmp_path / "k"
    conf = tmp_path / "owlery.toml"
    conf.write_text(f'quarantine_token_key_file = "{path}"\n')
    argv = ["quarantine", "token-key", "--generate", "-c", str(conf)]
    assert main(argv) == 0
    out = capsys.readouterr()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(read_key(str(path))) == 32
    assert path.read_text().strip() not in out.out + out.err
    assert main(argv) == 1
    assert "exists" in capsys.readouterr().err
