"""Broker URLs shown in errors, the Dashboard and logs: every form of password masked, never a traceback
(issue 26, finding 7). The command-line side is in test_cli_bad_input.py."""

from __future__ import annotations

import pytest

from stalk.embedded.broker.base import redact, redact_text, url_problem

PW = "S3cr3t-pw"


@pytest.mark.parametrize(("url", "shown"), [
    (f"redis://:{PW}@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    (f"amqp://guest:{PW}@localhost:5672//", "amqp://guest:***@localhost:5672//"),
    (f"redis://127.0.0.1:6379/0?password={PW}", "redis://127.0.0.1:6379/0?password=***"),
    (f"redis+socket:///tmp/r.sock?virtual_host=1&Password={PW}", "redis+socket:///tmp/r.sock?virtual_host=1&Password=***"),
    (f"redis://:pa#{PW}@h:1/0", "redis://:***@h:1/0"),
    (f"redis://:pa?{PW}@h:1/0", "redis://:***@h:1/0"),
    (f"redis://:pa/{PW}@h:1/0", "redis://:***@h:1/0"),
    (f"redis://:p%40{PW}@h:1/0", "redis://:***@h:1/0"),
    (f"redis://:{PW}@[::1]:6379/0", "redis://:***@[::1]:6379/0"),
    (f"redis://:{PW}@h:99999/0", "redis://:***@h:99999/0"),
    (f"sentinel://:{PW}@h1:26379;sentinel://:{PW}@h2:26379", "sentinel://:***@h1:26379;sentinel://:***@h2:26379"),
    ("redis://user@h:6379/0", "redis://user@h:6379/0"),
    ("redis://h:6379/0", "redis://h:6379/0"),
])
def test_every_form_of_password_is_masked_and_the_rest_kept(url, shown):
    assert redact(url) == shown


def test_what_kombu_cannot_read_is_one_line_without_the_password():
    for url in (f"redis://:pa#{PW}@h:1/0", f"redis://:pa?{PW}@h:1/0", f"redis://:pa/{PW}@h:1/0"):
        problem = url_problem(url)
        assert problem and "percent-encode it" in problem and PW not in problem
    for url in (f"redis://:{PW}@h:99999/0", f"redis://:{PW}@h:port/0", f"redis://:{PW}@[::1]:70000/0"):
        problem = url_problem(url)
        assert problem and "the port must be a number from 0 to 65535" in problem and PW not in problem
    for url in (f"redis://:{PW}@[::1]:6379/0", f"redis://:{PW}@h/0?x=1", "redis+socket:///tmp/r.sock",
                f"amqp://guest:{PW}@localhost:5672//", "redis://h:6379/0?password=x%2Fy"):
        assert url_problem(url) is None, url


def test_an_error_quoting_the_url_or_its_password_is_masked():
    url = f"redis://:{PW}@h:1/0"
    assert redact_text(f"cannot connect to {url}: AUTH {PW} refused", url) == (
        "cannot connect to redis://:***@h:1/0: AUTH *** refused")
    assert redact_text(f"bad {PW}", f"redis://h/0?password={PW}") == "bad ***"
