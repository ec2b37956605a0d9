-- Inbound message through the running owlery milter: expects ACCEPT, our A-R inserted,
-- the forged A-R (our authserv-id) deleted. Vars: sock, authserv.
local function main()
  local conn = mt.connect(sock, 5, 1)
  if conn == nil then error("mt.connect() failed") end
  mt.macro(conn, SMFIC_CONNECT, "j", "mx.owlery.test", "{daemon_name}", "smtpd")
  assert(mt.conninfo(conn, "mail.example.net", "192.0.2.10") == nil, "conninfo")
  assert(mt.helo(conn, "mail.example.net") == nil, "helo")
  assert(mt.mailfrom(conn, "<alice@example.net>") == nil, "mailfrom")
  assert(mt.rcptto(conn, "<bob@example.com>") == nil, "rcptto")
  assert(mt.data(conn) == nil, "data")
  assert(mt.header(conn, "Authentication-Results", " " .. authserv .. "; dkim=pass header.d=example.net") == nil, "AR")
  assert(mt.header(conn, "From", " Alice <alice@example.net>") == nil, "From")
  assert(mt.header(conn, "Subject", " hello") == nil, "Subject")
  if not mt.test_option(conn, SMFIP_NOEOH) then assert(mt.eoh(conn) == nil, "eoh") end
  assert(mt.bodystring(conn, "hello\r\n") == nil, "body")
  mt.macro(conn, string.byte("E"), "i", "MTQID1")
  assert(mt.eom(conn) == nil, "eom")
  local r = mt.getreply(conn)
  assert(r == SMFIR_ACCEPT, "eom reply not ACCEPT: " .. tostring(r))
  assert(mt.eom_check(conn, MT_HDRINSERT, "Authentication-Results"), "A-R not inserted")
  assert(mt.eom_check(conn, MT_HDRCHANGE, "Authentication-Results"), "forged A-R not removed")
  mt.echo("A-R: " .. mt.getheader(conn, "Authentication-Results", 0))
  mt.disconnect(conn)
end
local ok, err = pcall(main)
if not ok then mt.echo("FAIL: " .. tostring(err)); os.exit(1) end
mt.echo("PASS")
