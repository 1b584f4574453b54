"""Draw docs/images/drawn-3.png: a dark "3" on white, as a person draws a digit in a paint program.

    python docs/drawn_digit.py

The picture of `minicnn predict` in docs/training.md ("Your own pictures"): MNIST digits are light on
dark, so predict inverts a picture like this one before the model sees it. Drawn with Pillow's
ImageDraw, so that anyone can make it again; tests/cli/test_use.py checks that the file is this
script's drawing.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

PICTURE = Path(__file__).resolve().parent / "images" / "drawn-3.png"
SIZE = 280     # ten times MNIST's 28 pixels, as a drawing canvas might be
INK, PAPER = 24, 255


def draw_three() -> Image.Image:
    """A 280x280 greyscale "3": two bowls open to the left, drawn with a thick round pen."""
    picture = Image.new("L", (SIZE, SIZE), PAPER)
    pen = ImageDraw.Draw(picture)
    pen.arc((84, 36, 196, 146), start=200, end=90, fill=INK, width=22)    # the upper bowl, clockwise from the left
    pen.arc((74, 128, 206, 250), start=270, end=160, fill=INK, width=22)  # the lower bowl
    return picture


def main() -> None:
    draw_three().save(PICTURE, optimize=True)
    print(f"wrote {PICTURE}")


if __name__ == "__main__":
    main()
