"""The subject of a vacation reply without :subject: sieve_vacation_subject_template (%$ the
answered subject, %% a percent) for a message with a Subject field, else
sieve_vacation_default_subject, as Pigeonhole does."""

import pytest

from owlery.settings import Settings
from sieve.extensions.vacation import default_subject


@pytest.mark.parametrize("over, original, expected", [
    ({}, "Meeting", "Auto: Meeting"),
    ({}, None, "Automated reply"),                      # no Subject field
    ({}, "", "Auto:"),                                  # an empty one (sieve-test: "Auto: ")
    ({}, "=?utf-8?q?Gr=C3=BC=C3=9Fe?=", "Auto: Grüße"),
    ({}, "evil\r\nBcc: victim@example.org", "Auto: evil Bcc: victim@example.org"),
    ({"sieve_vacation_subject_template": "Re: %$ (away, 100%%)"}, "Plans", "Re: Plans (away, 100%)"),
    ({"sieve_vacation_subject_template": "%%$ literal"}, "Plans", "%$ literal"),
    # Pigeonhole (sieve-test 0.5.19): the default subject answers only a message without Subject
    ({"sieve_vacation_default_subject": "Out of office"}, "Plans", "Auto: Plans"),
    ({"sieve_vacation_default_subject": "Out of office"}, None, "Out of office"),
    ({"sieve_vacation_subject_template": "Re: %{subject}"}, "Plans", "Re: Plans"),  # 2.4 syntax
])
def test_default_subject(over, original, expected):
    assert default_subject(Settings().replace(**over), original) == expected


def test_through_the_engine():
    from sieve import api
    script = api.compile_script(b'require "vacation";\nvacation "I am away";\n')
    msg = (b"From: bob@example.com\r\nTo: alice@example.org\r\nSubject: Plans\r\n"
           b"Message-ID: <1@example.com>\r\n\r\nhi\r\n")
    settings = Settings().replace(sieve_vacation_subject_template="[away] %$")
    result = api.run(script, msg, api.Envelope(mail_from="bob@example.com", rcpt_to="alice@example.org"),
                     settings=settings)
    [vacation] = [a for a in result.actions if isinstance(a, api.Vacation)]
    assert vacation.subject == "[away] Plans"
