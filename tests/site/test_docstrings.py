"""docs/plaintext_docstrings.py: the package's plain-text docstrings read as rst."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "docs"))

from plaintext_docstrings import to_rst  # noqa: E402


def rst(text):
    return "\n".join(to_rst(text.split("\n")))


def test_an_indented_block_after_a_paragraph_becomes_a_literal_block():
    text = "Definitions:\n\n    H = -sum P log P\n        (0 log 0 := 0)\n\nAfter."
    assert rst(text) == (
        "Definitions:\n\n::\n\n    H = -sum P log P\n        (0 log 0 := 0)\n\nAfter."
    )


def test_a_block_that_is_already_literal_or_a_directive_is_left_alone():
    for text in [
        "Example::\n\n    out = f(x)",
        ".. note::\n\n   a note",
        ".. rubric:: Example\n\n   text",
        ":param x: a field\n\n    its second paragraph",
        "- an item\n\n  its second paragraph",
    ]:
        assert rst(text) == text


def test_a_list_right_after_its_lead_in_gets_a_blank_line():
    text = "Modules:\n- ``a``: one\n- ``b``: two,\n  continued\n\nAfter."
    assert rst(text) == "Modules:\n\n- ``a``: one\n- ``b``: two,\n  continued\n\nAfter."


def test_bars_are_escaped_outside_literals_math_and_literal_blocks():
    text = (
        "max |diff| <= atol; ``a | b`` and :math:`|x|` stay\n\n"
        "Table::\n\n    | a | b |\n\n>>> x | y"
    )
    assert rst(text) == (
        "max \\|diff\\| <= atol; ``a | b`` and :math:`|x|` stay\n\n"
        "Table::\n\n    | a | b |\n\n>>> x | y"
    )


def test_valid_rst_passes_through_unchanged():
    text = (
        "Summary line.\n\n:param q: (B, H, N, d) queries.\n:returns: out.\n\n"
        "- one\n- two\n\n1. first\n2. second"
    )
    assert rst(text) == text
