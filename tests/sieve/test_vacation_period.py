"""Vacation periods are held between sieve_vacation_min_period and sieve_vacation_max_period.

RFC 5230 4.1 lets a site set the minimum and maximum of :days; RFC 6131 2 adds :seconds, where
0 asks for a reply to every message, still subject to the site's minimum (as in Pigeonhole,
where only sieve_vacation_min_period = 0 lets a script reply every time).
"""

import pytest

from owlery.settings import Settings
from sieve import api

MSG = (b"From: bob@example.com\r\nTo: alice@example.org\r\nSubject: Plans\r\n"
       b"Message-ID: <1@example.com>\r\n\r\nhi\r\n")
DAY = 86400


def period(tag: str, **over) -> float:
    script = api.compile_script(f'require ["vacation", "vacation-seconds"];\nvacation {tag} "I am away";\n'.encode())
    settings = Settings().replace(**over)
    result = api.run(script, MSG, api.Envelope(mail_from="bob@example.com", rcpt_to="alice@example.org"),
                     settings=settings)
    [vacation] = [a for a in result.actions if isinstance(a, api.Vacation)]
    return vacation.period


SITE = {"sieve_vacation_min_period": "3d", "sieve_vacation_max_period": "30d"}


@pytest.mark.parametrize("tag, expected", [
    (":days 1", 3 * DAY),             # below the minimum: raised to it
    (":days 5", 5 * DAY),
    (":days 365", 30 * DAY),          # above the maximum: lowered to it
    (":seconds 3600", 3 * DAY),
    (":seconds 0", 3 * DAY),          # "always reply" is not allowed below the site's minimum
    (":days 0", 3 * DAY),
    ("", 7 * DAY),                    # sieve_vacation_default_period
])
def test_period_is_held_between_the_site_limits(tag, expected):
    assert period(tag, **SITE) == expected


@pytest.mark.parametrize("tag, expected", [
    (":seconds 0", 0),                # RFC 6131: 0 replies to every message, when the site allows it
    (":seconds 60", 60),
    (":days 2", 2 * DAY),
])
def test_no_minimum_lets_a_script_reply_every_time(tag, expected):
    assert period(tag, sieve_vacation_min_period="0", sieve_vacation_max_period="30d") == expected
