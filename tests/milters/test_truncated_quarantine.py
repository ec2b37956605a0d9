"""A message cut at milter_message_size_limit is never quarantined in part (nothing lost).

The stages see only the first milter_message_size_limit bytes of a bigger message; storing
those and discarding the message would lose the rest. Any stage that would quarantine such a
message puts the whole of it in Postfix's hold queue instead (smfi_quarantine), and a
per-recipient spam quarantine does the same rather than taking recipients off the envelope.
"""

import pytest

from milters import effects as fx
from owlery.quarantine import ListFilter
from owlery.quarantine.directory import DirectoryStore
from milters.stages import Services
from milters.stages.banned import BannedStage
from owlery.settings import Settings
from tests.milters.test_low_hardening import drive

EXE = (b"From: Alice <alice@sender.test>\r\nTo: bob@example.test\r\nSubject: invoice\r\n"
       b"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\nMessage-ID: <2@sender.test>\r\n"
       b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
       b"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
       b"--b\r\nContent-Type: application/octet-stream; name=\"invoice.exe\"\r\n"
       b"Content-Disposition: attachment; filename=\"invoice.exe\"\r\n\r\nMZ\r\n"
       b"--b\r\nContent-Type: text/plain\r\n\r\n" + b"x" * 5000 + b"\r\n--b--\r\n")


@pytest.mark.parametrize("limit, held", [(800, True), (10_000_000, False)])
def test_banned_quarantine_of_a_cut_message_holds_it_whole(tmp_path, limit, held):
    s = Settings().replace(quarantine_directory=str(tmp_path / "q"), milter_authserv_id="mx.owlery.test",
                           banned_action="quarantine", milter_message_size_limit=limit)
    out = drive(s, [BannedStage(s, Services(None))], EXE)
    stored = DirectoryStore(str(tmp_path / "q")).list(ListFilter(), 2e9) if (tmp_path / "q").exists() else []
    if held:
        assert any(isinstance(e, fx.Hold) for e in out.effects), out.effects
        assert stored == []
    else:
        assert [r.reason for r in stored] == ["banned"]
        assert not any(isinstance(e, fx.Hold) for e in out.effects)
