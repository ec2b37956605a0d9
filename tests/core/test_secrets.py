"""Secrets: the *_file twins, and no password in a log line or error (owlery.secrets)."""

import pytest

from owlery import settings as settings_mod
from owlery.secrets import SecretError, read_secret, redact
from owlery.state import StateUnavailable, open_store


@pytest.mark.parametrize("text, shown", [
    ("redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    ("rediss://owlery:s3cret@redis.example:6380/1", "rediss://owlery:***@redis.example:6380/1"),
    ("Redis redis://u:p%40ss@h/0: Connection refused", "Redis redis://u:***@h/0: Connection refused"),
    ("postgresql://owlery:s3cret@db/quarantine", "postgresql://owlery:***@db/quarantine"),
    ("host=db user=owlery password=s3cret dbname=q", "host=db user=owlery password=*** dbname=q"),
    ("host=db password='two words' dbname=q", "host=db password=*** dbname=q"),
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),       # nothing to hide
    ("unix:///run/redis.sock", "unix:///run/redis.sock"),
])
def test_redact(text, shown):
    assert redact(text) == shown


def settings_with(tmp_path, text):
    path = tmp_path / "owlery.toml"
    path.write_text(text)
    return settings_mod.load(str(path))


def test_secret_from_its_file_twin(tmp_path):
    secret = tmp_path / "srs.secret"
    secret.write_text("k3y\n")
    secret.chmod(0o640)
    s = settings_with(tmp_path, f'redirect_srs_secret_file = "{secret}"\n')
    assert read_secret(s, "redirect_srs_secret") == "k3y"
    assert read_secret(settings_with(tmp_path, 'redirect_srs_secret = "inline"\n'), "redirect_srs_secret") == "inline"


def test_both_forms_or_a_bad_file_are_refused(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("pw\n")
    secret.chmod(0o600)
    s = settings_with(tmp_path, f'ldap_bind_password = "x"\nldap_bind_password_file = "{secret}"\n')
    with pytest.raises(SecretError, match="not both"):
        read_secret(s, "ldap_bind_password")
    secret.chmod(0o644)
    s = settings_with(tmp_path, f'ldap_bind_password_file = "{secret}"\n')
    with pytest.raises(SecretError, match="readable by everyone"):
        read_secret(s, "ldap_bind_password")
    link = tmp_path / "link"
    link.symlink_to(secret)
    with pytest.raises(SecretError, match="pw|link"):
        read_secret(settings_with(tmp_path, f'ldap_bind_password_file = "{link}"\n'), "ldap_bind_password")
    empty = tmp_path / "empty"
    empty.write_text("")
    empty.chmod(0o600)
    with pytest.raises(SecretError, match="empty"):
        read_secret(settings_with(tmp_path, f'ldap_bind_password_file = "{empty}"\n'), "ldap_bind_password")


def test_a_redis_password_never_reaches_an_error(tmp_path):
    """The state store's errors (logged by every daemon) show the URL without its password."""
    from tests.harness.procs import free_port
    url_file = tmp_path / "redis.url"
    url_file.write_text(f"redis://:hunter2@127.0.0.1:{free_port()}/0\n")   # nothing listens there
    url_file.chmod(0o600)
    store = open_store(settings_with(tmp_path, f'state_backend = "redis"\nstate_redis_url_file = "{url_file}"\n'
                                     'state_redis_timeout = 1\n'))
    with pytest.raises(StateUnavailable) as failed:
        store.take("k", 1, 1.0, 5, 0.0)
    assert "hunter2" not in str(failed.value) and ":***@127.0.0.1" in str(failed.value)
