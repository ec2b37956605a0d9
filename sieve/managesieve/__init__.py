"""ManageSieve (RFC 5804): users upload, list and activate their Sieve scripts over port 4190.

protocol.py (sans-I/O wire format) · session.py (sans-I/O state machine) · storage.py
(Pigeonhole's on-disk layout, shared with Dovecot and read by delivery) · backend.py (logins,
storage and compiling for a session) · settings.py · service.py (the Twisted adapter) ·
cli.py (`owlery managesieve`).

Deployment notes (for the README):
- Run `owlery managesieve` as the mail owner (daemon_user = "vmail"), so the scripts it
  writes belong to the user delivery and Dovecot read them as. Logins come from the
  directory: files_passwords (a Dovecot passwd-file; Dovecot's passdb can read the same
  file) or an LDAP bind as the user.
- Dovecot reading the same scripts (or replacing this server):
  plugin { sieve = file:~/sieve;active=~/sieve/active.sieve }
  with mail homes at /var/lib/owlery/mail/%d/%n (the default delivery_sieve_script_template).
- Roundcube's managesieve plugin (config.inc.php), webmail on the same host:
  $config['managesieve_host'] = 'localhost';  $config['managesieve_port'] = 4190;
  $config['managesieve_auth_type'] = 'PLAIN'; $config['managesieve_vacation'] = 1;
  from another host: managesieve_host = 'tls://mail.example.org' with managesieve_tls_cert_file set.
Tests: tests/managesieve/
"""
