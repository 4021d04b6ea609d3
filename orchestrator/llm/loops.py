"""A streamed reply that has started to loop: where it should end. Pure: text in, a cut point out.

A small model at a low temperature can fall into writing the same paragraph again and again until
its token cap (recorded from Qwen2.5-Coder-1.5B: one block and its explanation written three times
over in 950 tokens, 70 to 90 s a reply on this machine, three replies in a row). Nothing after the
second copy is new, so a streaming provider may stop reading there (endpoints.*.stop_repeating).
"""

from __future__ import annotations

# The tail that must have come COPIES times, overlaps allowed, before a reply counts as looping: a
# paragraph, not a repeated word or line of a table (lines of data differ somewhere in 200 characters).
UNIT = 200
COPIES = 3


def loop_end(text: str, *, unit: int = UNIT, copies: int = COPIES) -> int | None:
    """Where a looping reply should end, or None when it is not looping: its last `unit` characters
    have come `copies` times (overlapping occurrences count, so a loop shorter than `unit` is found
    too), each turn between them the same text. The cut keeps what came before the loop and one
    whole turn of it, to the end of that turn's last line."""
    if len(text) < unit + copies - 1:
        return None
    tail = text[-unit:]
    starts: list[int] = []
    at = text.find(tail)
    while at != -1:
        starts.append(at)
        at = text.find(tail, at + 1)
    if len(starts) < copies:
        return None
    period = starts[-1] - starts[-2]
    begin = len(text) - unit - (copies - 1) * period
    if begin < 0 or text[begin + period :] != text[begin : len(text) - period]:
        return None  # the tail recurs, but what lies between differs: not a loop
    while begin > 0 and text[begin - 1] == text[begin - 1 + period]:
        begin -= 1  # the loop's first turn began earlier
    # Which character a turn starts at is a matter of reading ("...file.\n" + "...column.\n" loops
    # from either ".\n"): the cut goes on to the end of its line, still within the second turn.
    cut = begin + period
    line_end = text.find("\n", cut - 1, begin + 2 * period)
    return line_end + 1 if line_end != -1 else cut
