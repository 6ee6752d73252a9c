"""Read the package's plain-text docstrings as reStructuredText (for autodoc).

The docstrings of attention_np are Google style written for ``help()`` as much as
for this site (napoleon turns their Args/Returns sections into fields). Three
plain-text habits in them mean something else, or nothing valid, in
reStructuredText; ``to_rst`` translates them, after napoleon:

- an indented block after a blank line (a table of definitions, call signatures,
  a formula) is preformatted text: it becomes a literal block;
- a list that starts on the line after its lead-in ("Modules:" then "- a") gets the
  blank line that reStructuredText needs before a list;
- ``|x|`` is an absolute value or a norm, never a substitution: the bars are escaped
  (not inside ``inline literals``, :math:`roles`, literal blocks or doctests).
"""

import re

BULLET = re.compile(r"(\s*)([-*+]|\d+[.)])\s+")
LITERALS = re.compile(r"(``.*?``|:math:`[^`]*`)")


def indent_of(line):
    return len(line) - len(line.lstrip())


def text_indent(line):
    """Where a line's text starts: after the marker for a list item."""
    match = BULLET.match(line)
    return match.end() if match else indent_of(line)


def literal_blocks(lines):
    """Mark an indented block that follows a blank line and a paragraph as literal."""
    out, paragraph = [], None  # paragraph: (first line, text indent of its last line)
    for line in lines:
        if not line.strip():
            out.append(line)
            continue
        indent = indent_of(line)
        blank_before = bool(out) and not out[-1].strip()
        if paragraph and blank_before and indent > paragraph[1]:
            first = paragraph[0].strip()
            if not first.endswith("::") and not first.startswith(("..", ":")):
                out += [" " * paragraph[1] + "::", ""]
            paragraph = None
            out.append(line)
            continue
        if blank_before or paragraph is None:
            paragraph = (line, text_indent(line))
        else:
            paragraph = (paragraph[0], text_indent(line))
        if line.rstrip().endswith("::"):
            paragraph = (line, text_indent(line))
        out.append(line)
    return _skip_marked(out)


def _skip_marked(lines):
    """Inside a literal block nothing else may change: (line, in a literal?) pairs."""
    marked, opener = [], None
    for line in lines:
        stripped, indent = line.strip(), indent_of(line)
        if opener is not None and stripped and indent <= opener:
            opener = None
        marked.append((line, opener is not None and bool(stripped)))
        if opener is None and stripped.endswith("::"):
            opener = indent
    return marked


def list_lead_ins(marked):
    """Insert the blank line that a list needs after its lead-in paragraph."""
    out = []
    for line, literal in marked:
        prev, prev_literal = out[-1] if out else ("", True)
        starts_list = BULLET.match(line) and not literal
        if (
            starts_list
            and prev.strip()
            and not prev_literal
            and not BULLET.match(prev)
            and indent_of(prev) == indent_of(line)
            and not prev.strip().startswith((":", ".."))
        ):
            out.append(("", False))
        out.append((line, literal))
    return out


def escape_bars(marked):
    out = []
    for line, literal in marked:
        if "|" in line and not literal and not line.strip().startswith((">>>", "...")):
            parts = LITERALS.split(line)
            parts[::2] = [part.replace("|", r"\|") for part in parts[::2]]
            line = "".join(parts)
        out.append(line)
    return out


def to_rst(lines):
    """The docstring ``lines`` (after napoleon) as valid reStructuredText."""
    return escape_bars(list_lead_ins(literal_blocks(lines)))


def process_docstring(app, what, name, obj, options, lines):
    """Sphinx's autodoc-process-docstring handler: rewrite ``lines`` in place."""
    lines[:] = to_rst(lines)
