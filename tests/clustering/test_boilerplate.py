"""Boilerplate stripping: what a ticket says survives, greetings, signatures and quoted mail do not."""

from __future__ import annotations

from opsloop.clustering.boilerplate import strip_boilerplate

MAIL = """Hello team,

Our VPN client disconnects every ten minutes since the update.
Can you check the gateway?

Kind regards,
Anna Novak
IT coordinator, Finance

Sent from my iPhone

-----Original Message-----
From: Service Desk
Sent: Monday
Subject: Ticket received
> Thank you for contacting the service desk.
"""


def test_mail_keeps_the_problem_and_drops_greeting_signature_and_quote():
    (out,) = strip_boilerplate([MAIL])
    assert out.startswith("Our VPN client disconnects every ten minutes since the update")
    assert "gateway" in out
    for gone in ("Hello", "regards", "Anna", "coordinator", "iPhone", "Original", "Service Desk", "contacting"):
        assert gone not in out


def test_reply_headers_and_quoted_lines_are_dropped():
    texts = ["Printer on floor 3 jams again.\n\nOn Tue, 3 Nov 2026 at 10:02, Bob <bob@x.org> wrote:\n> old text",
             "Laptop fan is loud\n> quoted line\nstill loud after reboot",
             "Mailbox full\nFrom: Jane Doe\nSent: Friday\nTo: helpdesk\nprevious thread",
             "Monitor flickers\n--\nJohn, facilities"]
    assert strip_boilerplate(texts) == ["Printer on floor 3 jams again", "Laptop fan is loud still loud after reboot",
                                        "Mailbox full", "Monitor flickers"]


def test_flattened_lowercase_corpora_lose_courtesy_words_only():
    text = "hi please reset password account locked thank you regards best practice guide"
    assert strip_boilerplate([text]) == ["please reset password account locked best practice guide"]
    # a word that merely contains a greeting is kept
    assert strip_boilerplate(["this ticket is high priority"]) == ["this ticket is high priority"]


def test_pure_boilerplate_becomes_empty_and_missing_text_is_empty():
    assert strip_boilerplate(["Hi,\n\nThanks,\nBob", None, ""]) == ["", "", ""]
    assert strip_boilerplate([]) == []


def test_signoff_on_the_first_line_is_not_taken_for_a_signature():
    # "Thanks" opening a one-line ticket is a courtesy word, not the start of a signature
    assert strip_boilerplate(["Thanks for the fix, but the export still fails"]) == [
        "for the fix, but the export still fails"]
