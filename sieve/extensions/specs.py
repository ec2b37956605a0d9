"""Where each Sieve extension is specified, with a one-line description: the table behind
`owlery sieve extensions`. sieve.extensions applies it to the registry for extensions whose
Extension(...) does not declare `rfc`/`summary` itself (a new extension may declare both in
its own module instead). Tests: tests/sieve/test_cli_extensions.py (every registered
extension has its specification).
"""

from __future__ import annotations

# capability -> (specification, description)
SPECS: dict[str, tuple[str, str]] = {
    "core": ("RFC 5228", "the base language: if/elsif/else, stop, keep, discard, redirect, "
                         "address/header/exists/size tests"),
    "comparator-i;ascii-numeric": ("RFC 4790 section 9.1", "numeric comparison of strings of digits"),
    "comparator-i;unicode-casemap": ("RFC 5051", "case-insensitive comparison of Unicode text"),
    "fileinto": ("RFC 5228 section 4.1", "file the message into a named mailbox"),
    "envelope": ("RFC 5228 section 5.4", "test the SMTP envelope sender and recipient"),
    "encoded-character": ("RFC 5228 section 2.4.2.4", "${hex:...} and ${unicode:...} in strings"),
    "reject": ("RFC 5429 section 2.2", "refuse the message with a bounce (MDN)"),
    "ereject": ("RFC 5429 section 2.1", "refuse the message at the SMTP/LMTP level when possible"),
    "imap4flags": ("RFC 5232", "set IMAP flags and keywords on stored messages"),
    "variables": ("RFC 5229", "variables, the set command, match variables, the string test"),
    "relational": ("RFC 5231", ":count and :value match types with relational operators"),
    "subaddress": ("RFC 5233", ":user and :detail parts of addresses (user+detail@domain)"),
    "body": ("RFC 5173", "test the body of the message"),
    "copy": ("RFC 3894", ":copy on fileinto and redirect (keep the implicit keep)"),
    "editheader": ("RFC 5293", "add and delete header fields"),
    "date": ("RFC 5260", "date and currentdate tests on parts of dates"),
    "index": ("RFC 5260 section 6", ":index and :last to pick one occurrence of a header field"),
    "regex": ("draft-ietf-sieve-regex-01", ":regex match type (POSIX extended regular expressions)"),
    "include": ("RFC 6609", "include other scripts, global variables"),
    "mailbox": ("RFC 5490 section 3", "mailboxexists test and fileinto :create"),
    "vacation": ("RFC 5230", "autoreply to senders, once per period"),
    "vacation-seconds": ("RFC 6131", ":seconds for vacation periods shorter than a day"),
    "duplicate": ("RFC 7352", "detect messages already seen (by Message-ID or a value)"),
    "spamtest": ("RFC 5235", "test the spam score the scanner gave (0-10)"),
    "spamtestplus": ("RFC 5235", "spamtest :percent (score as a percentage)"),
    "virustest": ("RFC 5235", "test the virus scan result (0-5)"),
    "environment": ("RFC 5183", "test facts about the delivery environment"),
    "vnd.dovecot.environment": ("vendor (Pigeonhole)",
                                "Dovecot's extra environment items and the env. variables namespace"),
    "ihave": ("RFC 5463", "test whether an extension is available; the error command"),
    "foreverypart": ("RFC 5703 section 3", "loop over the MIME parts of the message"),
    "mime": ("RFC 5703 section 4", ":mime, :anychild and content-type options on header/address/exists"),
    "extracttext": ("RFC 5703 section 7", "put the text of a MIME part into a variable"),
    "replace": ("RFC 5703 section 5", "replace the body of the message (or of a MIME part)"),
    "enclose": ("RFC 5703 section 6", "enclose the message in a new one"),
    "enotify": ("RFC 5435, RFC 5436", "send notifications (mailto: method)"),
    "special-use": ("RFC 8579", "fileinto :specialuse and specialuse_exists (\\Junk, \\Sent...)"),
    "mboxmetadata": ("RFC 5490 section 3", "metadata and metadataexists tests on mailbox annotations"),
    "servermetadata": ("RFC 5490 section 3", "servermetadata and servermetadataexists tests"),
    "vnd.dovecot.report": ("vendor (Pigeonhole spec-bosch-sieve-report; RFC 5965 reports)",
                           "send an abuse feedback report (ARF) about the message"),
    "vnd.dovecot.testsuite": ("vendor (Pigeonhole)",
                              "the .svtest test language (owlery sieve testsuite only)"),
}
