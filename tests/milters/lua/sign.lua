-- An authenticated submission through the running owlery milter: expects ACCEPT and a
-- DKIM-Signature inserted for example.net. Vars: sock.
local function main()
  local conn = mt.connect(sock, 5, 1)
  if conn == nil then error("mt.connect() failed") end
  mt.macro(conn, SMFIC_CONNECT, "j", "mx.owlery.test", "{daemon_name}", "submission")
  assert(mt.conninfo(conn, "laptop.example.net", "192.0.2.44") == nil, "conninfo")
  assert(mt.helo(conn, "laptop") == nil, "helo")
  mt.macro(conn, SMFIC_MAIL, "{auth_authen}", "alice", "{auth_type}", "PLAIN")
  assert(mt.mailfrom(conn, "<alice@example.net>") == nil, "mailfrom")
  assert(mt.rcptto(conn, "<bob@example.com>") == nil, "rcptto")
  assert(mt.data(conn) == nil, "data")
  assert(mt.header(conn, "From", " Alice <alice@example.net>") == nil, "From")
  assert(mt.header(conn, "To", " bob@example.com") == nil, "To")
  assert(mt.header(conn, "Subject", " signed by owlery") == nil, "Subject")
  if not mt.test_option(conn, SMFIP_NOEOH) then assert(mt.eoh(conn) == nil, "eoh") end
  assert(mt.bodystring(conn, "hello from the submission port\r\n") == nil, "body")
  mt.macro(conn, string.byte("E"), "i", "MTQID2")
  assert(mt.eom(conn) == nil, "eom")
  local r = mt.getreply(conn)
  assert(r == SMFIR_ACCEPT, "eom reply not ACCEPT: " .. tostring(r))
  assert(mt.eom_check(conn, MT_HDRINSERT, "DKIM-Signature"), "no DKIM-Signature inserted")
  mt.echo("DKIM-Signature: " .. mt.getheader(conn, "DKIM-Signature", 0))
  mt.disconnect(conn)
end
local ok, err = pcall(main)
if not ok then mt.echo("FAIL: " .. tostring(err)); os.exit(1) end
mt.echo("PASS")
