"""Text made safe for a terminal: every control character a terminal could act on is shown as an
escape, and ordinary text of any script passes unchanged."""

from __future__ import annotations

import pytest

from identikit.base.text import terminal_lines, terminal_safe


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("dog\x1b]0;pwned\x07", "dog\\x1b]0;pwned\\x07"),  # OSC: sets the window title
        ("x\x1b[2Jy", "x\\x1b[2Jy"),  # CSI: clears the screen
        ("new\nline", "new\\nline"),  # a forged table row
        ("back\rover\ttab", "back\\rover\\ttab"),
        ("nul\x00", "nul\\x00"),
        ("del\x7f", "del\\x7f"),
        ("c1\x9b2J", "c1\\x9b2J"),  # the one-character CSI of the C1 set
        ("c1\x85", "c1\\x85"),  # NEL, a line break to some terminals
        ("cat\udcff", "cat\\udcff"),  # an undecodable byte of a file name (surrogateescape)
        ("\u202egnp.exe", "\\u202egnp.exe"),  # right-to-left override
        ("a\u2028b", "a\\u2028b"),
    ],
)
def test_controls_are_shown_escaped(raw: str, shown: str) -> None:
    assert terminal_safe(raw) == shown


def test_what_a_terminal_receives_holds_no_control_character() -> None:
    every = "".join(chr(c) for c in range(0x10000) if not 0xD800 <= c < 0xE000)
    safe = terminal_safe(every + "\udc80\ud800")
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in safe)
    assert not any(0xD800 <= ord(c) < 0xE000 for c in safe)


@pytest.mark.parametrize("text", ["zero", "chat noir", "Ünïcödé", "猫", "🐱 cat", "a\\x1b", ""])
def test_ordinary_text_passes_unchanged(text: str) -> None:
    assert terminal_safe(text) == text


def test_any_value_is_made_text_and_lines_keep_their_breaks() -> None:
    assert terminal_safe(3) == "3"
    assert terminal_lines("warning \x1b[31m\n  source line\x07") == (
        "warning \\x1b[31m\n  source line\\x07"
    )
