"""A 3x5 pixel bitmap font, so panel labels need neither PIL nor OpenCV on a device.

Upper-case letters, digits and a little punctuation; lower case renders as upper case and any other
character as '?'. Legible at ``scale=2`` and above, which is all a debug panel needs.
"""

from __future__ import annotations

import numpy as np

GLYPH_HEIGHT = 5
GLYPH_WIDTH = 3

# Each glyph: five rows of three pixels, top to bottom, '#' = ink.
_GLYPHS = {
    "A": ".#. #.# ### #.# #.#", "B": "##. #.# ##. #.# ##.", "C": ".## #.. #.. #.. .##",
    "D": "##. #.# #.# #.# ##.", "E": "### #.. ##. #.. ###", "F": "### #.. ##. #.. #..",
    "G": ".## #.. #.# #.# .##", "H": "#.# #.# ### #.# #.#", "I": "### .#. .#. .#. ###",
    "J": "..# ..# ..# #.# .#.", "K": "#.# #.# ##. #.# #.#", "L": "#.. #.. #.. #.. ###",
    "M": "#.# ### ### #.# #.#", "N": "##. #.# #.# #.# #.#", "O": ".#. #.# #.# #.# .#.",
    "P": "##. #.# ##. #.. #..", "Q": ".#. #.# #.# ##. .##", "R": "##. #.# ##. #.# #.#",
    "S": ".## #.. .#. ..# ##.", "T": "### .#. .#. .#. .#.", "U": "#.# #.# #.# #.# ###",
    "V": "#.# #.# #.# #.# .#.", "W": "#.# #.# ### ### #.#", "X": "#.# #.# .#. #.# #.#",
    "Y": "#.# #.# .#. .#. .#.", "Z": "### ..# .#. #.. ###",
    "0": "### #.# #.# #.# ###", "1": ".#. ##. .#. .#. ###", "2": "##. ..# .#. #.. ###",
    "3": "##. ..# .#. ..# ##.", "4": "#.# #.# ### ..# ..#", "5": "### #.. ##. ..# ##.",
    "6": ".## #.. ### #.# ###", "7": "### ..# .#. .#. .#.", "8": "### #.# ### #.# ###",
    "9": "### #.# ### ..# ##.",
    " ": "... ... ... ... ...", ".": "... ... ... ... .#.", ",": "... ... ... .#. #..",
    "-": "... ... ### ... ...", "_": "... ... ... ... ###", ":": "... .#. ... .#. ...",
    "/": "..# ..# .#. #.. #..", "(": ".#. #.. #.. #.. .#.", ")": ".#. ..# ..# ..# .#.",
    "%": "#.# ..# .#. #.. #.#", "=": "... ### ... ### ...", "+": "... .#. ### .#. ...",
    "?": "##. ..# .#. ... .#.", "|": ".#. .#. .#. .#. .#.", "[": "##. #.. #.. #.. ##.",
    "]": ".## ..# ..# ..# .##", "<": "..# .#. #.. .#. ..#", ">": "#.. .#. ..# .#. #..",
}


def _bitmap(rows: str) -> np.ndarray:
    return np.array([[c == "#" for c in row] for row in rows.split()], dtype=bool)


GLYPHS = {char: _bitmap(rows) for char, rows in _GLYPHS.items()}


def render_text(text: str, scale: int = 2) -> np.ndarray:
    """Render one line of text as a bool mask ``5 * scale`` high (glyphs one column apart)."""
    scale = max(1, int(scale))
    columns = []
    for i, char in enumerate(str(text).upper()):
        if i:
            columns.append(np.zeros((GLYPH_HEIGHT, 1), dtype=bool))
        columns.append(GLYPHS.get(char, GLYPHS["?"]))
    if not columns:
        return np.zeros((GLYPH_HEIGHT * scale, 0), dtype=bool)
    mask = np.concatenate(columns, axis=1)
    return np.kron(mask, np.ones((scale, scale), dtype=bool)).astype(bool)
