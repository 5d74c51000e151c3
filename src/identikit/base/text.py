"""Text made safe for a terminal: control characters shown as escapes, never sent.

Class names come from folder names and files a user was handed, model names from file names.
Printed raw, such a name can drive the terminal: ``ESC [2J`` clears the screen, ``ESC ] 0; ...
BEL`` sets the window title (and, on some terminals, more), a newline forges a table row, and
bidirectional overrides make text read in another order than it runs (Boucher and Anderson
2021, "Trojan Source: Invisible Vulnerabilities"). ECMA-48 (5th edition, 1991) names the C0
(U+0000-U+001F) and C1 (U+0080-U+009F) control sets and DEL; a terminal acts on any of them.

:func:`terminal_safe` shows each such character as a Python-style escape (``\\x1b``, ``\\n``,
``\\u202e``). A backslash is left as it is: messages show names by their ``repr`` (already
escaped), and doubling its backslashes would garble them; a name that spells an escape out is
harmless. Only what goes to a terminal is escaped: files keep names as they are.
"""

from __future__ import annotations

from itertools import chain

# Shown as the letter escapes people know; every other control as \xNN, \uNNNN.
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

# Bidirectional embeddings, overrides and isolates (Unicode Standard Annex #9) and the line and
# paragraph separators, which some terminals and viewers break lines at.
_LAYOUT_CONTROLS = (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x2028, 0x2029)


def _escape(code: int) -> str:
    """The escape that shows the character ``code``: ``\\n``, ``\\x1b`` or ``\\udcff``."""
    char = chr(code)
    if char in _NAMED:
        return _NAMED[char]
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _unsafe() -> chain[int]:
    """Every code point :func:`terminal_safe` escapes: C0, DEL, C1, lone
    surrogates (a file name's undecodable bytes, under Python's ``surrogateescape``) and the
    layout controls above."""
    return chain(
        range(0x00, 0x20),
        (0x7F,),
        range(0x80, 0xA0),
        range(0xD800, 0xE000),
        _LAYOUT_CONTROLS,
    )


_TABLE = {code: _escape(code) for code in _unsafe()}


def terminal_safe(text: object) -> str:
    """``text`` (made a string) with every character a terminal could act on shown as an
    escape: safe to print, one line, and the same text where it holds none (ordinary letters
    of any script, accents, emoji and spaces pass unchanged)."""
    return str(text).translate(_TABLE)


def terminal_lines(text: object) -> str:
    """As :func:`terminal_safe`, line by line: ``text``'s own line breaks kept, every other
    control shown escaped (for text of several lines, such as a warning and its source line)."""
    return "\n".join(terminal_safe(line) for line in str(text).split("\n"))
