"""Pictures of products, drawn with Pillow for the offline sample catalog.

:func:`draw_product` draws one product of a :data:`KINDS` kind (shoes — heels,
flats, casual and sports shoes —, t-shirts, shirts, jeans, trousers, dresses,
handbags, watches, caps, sunglasses) in one of the :data:`COLOURS`, as a
portrait RGB picture on a white background, like the Kaggle catalog's photos
(60x80 px by default). Each picture is drawn at 3x its size and downsampled, so
edges are smooth like a photo's. The generator passed in supplies per-item
jitter (size, position, proportions, a little tint, sometimes a stripe
pattern): items of one kind look alike without being identical, and the same
generator state draws the same picture.

Every drawing is given in a 60x80 *design space* (x 0..60, y 0..80) that the
pen scales to the picture size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from ..errors import CatalogError

IMAGE_SIZE: tuple[int, int] = (60, 80)
"""Size (width, height) in pixels of a catalog picture, as in the Kaggle "small" catalog."""

_SUPERSAMPLE = 3  # draw at 3x and downsample: smooth edges like a photo
_BACKGROUND = (255, 255, 255)

RGB = tuple[int, int, int]

COLOURS: dict[str, RGB] = {
    "Black": (32, 32, 34),
    "White": (234, 234, 232),
    "Grey": (128, 128, 132),
    "Silver": (190, 192, 200),
    "Red": (200, 32, 42),
    "Maroon": (118, 24, 38),
    "Pink": (238, 128, 168),
    "Purple": (118, 52, 142),
    "Blue": (42, 88, 200),
    "Navy Blue": (26, 36, 92),
    "Green": (42, 140, 64),
    "Olive": (110, 112, 48),
    "Yellow": (240, 200, 40),
    "Orange": (240, 120, 30),
    "Brown": (118, 70, 36),
    "Beige": (218, 198, 158),
    "Gold": (212, 172, 56),
}
"""Kaggle ``baseColour`` names the sample uses, with the RGB they are drawn in."""


def _shade(colour: RGB, factor: float) -> RGB:
    """Darken (factor < 1) or lighten towards white (factor > 1)."""
    if factor <= 1:
        return tuple(int(round(c * factor)) for c in colour)  # type: ignore[return-value]
    t = min(factor - 1, 1.0)
    return tuple(int(round(c + (255 - c) * t)) for c in colour)  # type: ignore[return-value]


def _outline(colour: RGB) -> RGB:
    """An edge colour that shows on both the fill and the white background."""
    if sum(colour) / 3 > 200:
        return (150, 150, 150)
    if sum(colour) / 3 < 50:
        return (12, 12, 12)
    return _shade(colour, 0.6)


def _contrast(colour: RGB) -> RGB:
    """A detail colour (stitching, laces, stripes) that stands out from ``colour``."""
    return (245, 245, 245) if sum(colour) / 3 < 150 else (40, 40, 40)


class _Pen:
    """Draws in the 60x80 design space onto a supersampled canvas, with jitter.

    Every coordinate is given in design units (x 0..60, y 0..80); the pen
    scales it around the centre by ``scale``, shifts it by ``(dx, dy)`` and
    maps it to canvas pixels.
    """

    def __init__(self, image: Image.Image, scale: float, dx: float, dy: float):
        self.image = image
        self.draw = ImageDraw.Draw(image)
        self.scale = scale
        self.dx, self.dy = dx, dy
        self.sx = image.width / IMAGE_SIZE[0]
        self.sy = image.height / IMAGE_SIZE[1]

    def pt(self, x: float, y: float) -> tuple[float, float]:
        x = 30 + (x - 30) * self.scale + self.dx
        y = 40 + (y - 40) * self.scale + self.dy
        return x * self.sx, y * self.sy

    def pts(self, points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
        return [self.pt(x, y) for x, y in points]

    def box(self, x0: float, y0: float, x1: float, y1: float) -> list[float]:
        (a, b), (c, d) = self.pt(x0, y0), self.pt(x1, y1)
        return [min(a, c), min(b, d), max(a, c), max(b, d)]

    def w(self, width: float) -> int:
        return max(1, int(round(width * self.scale * self.sx)))

    def polygon(self, points, fill, outline=None, width=1.0):
        self.draw.polygon(self.pts(points), fill=fill, outline=outline, width=self.w(width) if outline else 0)

    def ellipse(self, box, fill=None, outline=None, width=1.0):
        self.draw.ellipse(self.box(*box), fill=fill, outline=outline, width=self.w(width))

    def rect(self, box, fill=None, outline=None, width=1.0, radius=0.0):
        self.draw.rounded_rectangle(
            self.box(*box), radius=radius * self.scale * self.sx, fill=fill, outline=outline, width=self.w(width)
        )

    def line(self, points, fill, width=1.0):
        self.draw.line(self.pts(points), fill=fill, width=self.w(width), joint="curve")

    def arc(self, box, start, end, fill, width=1.0):
        self.draw.arc(self.box(*box), start, end, fill=fill, width=self.w(width))

    def pattern(self, shape: Callable[[_Pen], None], colour: RGB, rng: np.random.Generator, vertical=False):
        """Overlay stripes in ``colour``, clipped to what ``shape`` draws."""
        mask = Image.new("L", self.image.size, 0)
        pen = _Pen(mask, self.scale, self.dx, self.dy)
        shape(pen)
        stripes = Image.new("L", self.image.size, 0)
        sd = ImageDraw.Draw(stripes)
        period = float(rng.uniform(5, 9)) * self.sx
        thick = period * float(rng.uniform(0.3, 0.5))
        extent = self.image.width if vertical else self.image.height
        offset = float(rng.uniform(0, period))
        pos = -period + offset
        while pos < extent:
            if vertical:
                sd.rectangle([pos, 0, pos + thick, self.image.height], fill=255)
            else:
                sd.rectangle([0, pos, self.image.width, pos + thick], fill=255)
            pos += period
        self.image.paste(Image.new("RGB", self.image.size, colour), (0, 0), ImageChops.multiply(mask, stripes))


def _j(rng: np.random.Generator, spread: float) -> float:
    return float(rng.uniform(-spread, spread))


def _draw_heels(pen: _Pen, c: RGB, rng: np.random.Generator) -> None:
    o = _outline(c)
    h = _j(rng, 3)  # heel height
    toe = 7 + _j(rng, 2)
    heel_x = 45 + _j(rng, 2)
    block = float(rng.uniform(0, 3)) if rng.random() < 0.35 else 0.0  # stiletto or block heel
    pen.polygon(
        [(heel_x - 1, 44), (heel_x + 5, 43), (heel_x + 4 + block * 0.3, 62 + h), (heel_x + 2.5 - block, 62 + h)],
        _shade(c, 0.7), o,
    )
    # side view, toe at the left, the sole rising from the toe to the heel seat
    upper = [
        (toe - 1, 60), (toe, 55), (toe + 7, 51), (toe + 15, 49), (28, 48), (37, 42 - h / 2),
        (heel_x - 1, 35 - h), (heel_x + 5, 34 - h), (heel_x + 6, 40), (heel_x + 5, 44),
        (40, 47), (30, 53), (21, 58), (toe + 5, 61.5),
    ]
    pen.polygon(upper, c, o, 1.2)
    # the insole seen through the opening
    pen.polygon([(toe + 15, 50.5), (28, 49.5), (37, 44 - h / 2), (heel_x, 37 - h), (heel_x - 2, 41), (36, 47),
                 (26, 51.5)], _shade(c, 0.55) if sum(c) > 150 else (95, 95, 98))
    if rng.random() < 0.35:  # a strap across the instep
        pen.line([(toe + 17, 50), (toe + 19, 56)], o if sum(c) > 150 else (150, 150, 150), 1.6)


def _draw_flats(pen: _Pen, c: RGB, rng: np.random.Generator) -> None:
    o = _outline(c)
    toe = 6 + _j(rng, 2)
    back = 54 + _j(rng, 2)
    top = 47 + _j(rng, 1.5)
    pen.polygon(
        [(toe, 58), (toe + 2, 53), (toe + 10, 50), (24, top), (40, top - 1), (back - 3, top - 2),
         (back, 50), (back + 1, 56), (back - 1, 60), (toe + 4, 60)],
        c, o, 1.2,
    )
    pen.rect((toe + 1, 58.5, back, 61.5), fill=_shade(c, 0.6), radius=1.5)  # thin sole
    pen.ellipse((24, top - 1.5, back - 2, top + 3), fill=_shade(c, 0.5))  # opening
    if rng.random() < 0.5:  # bow on the toe
        bx = toe + 13
        pen.polygon([(bx - 4, 48), (bx, 50.5), (bx - 4, 53)], _contrast(c))
        pen.polygon([(bx + 4, 48), (bx, 50.5), (bx + 4, 53)], _contrast(c))


def _sneaker(pen: _Pen, c: RGB, rng: np.random.Generator, *, sport: bool) -> None:
    o = _outline(c)
    sole_h = (8 if sport else 4.5) + _j(rng, 1)
    top = (30 if sport else 40) + _j(rng, 2)
    toe = 4 + _j(rng, 2)
    back = 56 + _j(rng, 1.5)
    base = 60
    upper = [
        (toe, base - sole_h), (toe + 2, base - sole_h - 6), (toe + 12, base - sole_h - 9),
        (26, top + 6), (36, top), (back - 6, top - 1), (back, top + 2),
        (back + 1, base - sole_h), (toe, base - sole_h),
    ]
    pen.polygon(upper, c, o, 1.2)
    sole = (230, 230, 230) if sum(c) < 600 else (90, 90, 90)
    if sport:
        pen.polygon(
            [(toe - 1, base - sole_h), (back + 2, base - sole_h - 1), (back + 2, base), (toe + 6, base + 0.5),
             (toe, base - 2)],
            sole, (140, 140, 140), 1,
        )
        accent = COLOURS[["Red", "Blue", "Yellow", "Green", "Orange"][int(rng.integers(5))]]
        # the swoosh / side stripes
        pen.line([(toe + 14, base - sole_h - 2), (32, base - sole_h - 5), (back - 4, top + 6)], accent, 2.2)
        pen.line([(toe + 18, base - sole_h - 1), (back - 2, base - sole_h - 3)], accent, 1.2)
    else:
        pen.rect((toe - 1, base - sole_h, back + 1.5, base), fill=sole, outline=(140, 140, 140), radius=1.5)
        pen.polygon([(toe, base - sole_h), (toe + 2, base - sole_h - 6), (toe + 10, base - sole_h - 8),
                     (toe + 10, base - sole_h)], _shade(c, 0.8))  # toe cap
    lace = _contrast(c)
    for k in range(4):  # laces along the instep
        x = 22 + 4 * k
        y = top + 10 - 2.2 * k - (2 if sport else 0)
        pen.line([(x - 2, y - 1), (x + 2, y + 1)], lace, 0.9)


def _draw_casual_shoes(pen: _Pen, c: RGB, rng: np.random.Generator) -> None:
    _sneaker(pen, c, rng, sport=False)


def _draw_sports_shoes(pen: _Pen, c: RGB, rng: np.random.Generator) -> None:
    _sneaker(pen, c, rng, sport=True)


def _draw_tshirts(pen: _Pen, c: RGB, rng: np.random.Generator) -> None:
    o = _outline(c)
    sl = 6 + _j(rng, 2)  # sleeve reach
    hem = 70 + _j(rng, 2)

    def shape(p: _Pen, fill=c, outline=o):
        p.polygon(
            [(21, 16), (26, 18), (34, 18), (39, 16), (50, 21), (60 - sl, 33), (46, 37), (46, hem),
             (14, hem), (14, 37), (sl, 33), (10, 21)],
            fill, outline, 1.2,
        )

    shape(pen)
    if rng.random() < 0.35:
        pen.pattern(lambda p: shape(p, 255, None), _contrast(c) if rng.random() < 0.5 else _shade(c, 0.6), rng)
        shape(pen, None, o)
    pen.ellipse((24, 13, 36, 22), fill=_shade(c, 0.55), outline=o)  # round neck
    if rng.random() < 0.4:  # chest print
        pen.rect((25, 32, 35, 42), fill=_contrast(c), radius=1.5)


def _draw_shirts(pen: _Pen, c: RGB, rng: np.random.Generator) -> None:
    o = _outline(c)
    cuff = 64 + _j(rng, 2)
    hem = 72 + _j(rng, 2)

    def shape(p: _Pen, fill=c, outline=o):
        p.polygon(
            [(21, 13), (39, 13), (49, 17), (55, cuff), (48, cuff + 1), (45, 32), (45, hem),
             (15, hem), (15, 32), (12, cuff + 1), (5, cuff), (11, 17)],
            fill, outline, 1.2,
        )

    shape(pen)
    if rng.random() < 0.4:  # checks or stripes
        pen.pattern(lambda p: shape(p, 255, None), _shade(c, 0.6), rng, vertical=True)
        if rng.random() < 0.5:
            pen.pattern(lambda p: shape(p, 255, None), _shade(c, 0.7), rng)
        shape(pen, None, o)
    collar = _shade(c, 1.25) if sum(c) < 600 else (205, 205, 205)
    pen.polygon([(21, 12), (30, 21), (24, 23), (19, 15)], collar, o)
    pen.polygon([(39, 12), (30, 21), (36, 23), (41, 15)], collar, o)
    pen.line([(30, 21), (30, hem)], o, 0.8)  # placket
    for k in range(5):
        y = 26 + k * (hem - 30) / 5
        pen.ellipse((29.2, y - 0.8, 30.8, y + 0.8), fill=_contrast(c))


def _trousers(pen: _Pen, c: RGB, rng: np.random.Generator, *, jeans: bool) -> None:
    o = _outline(c)
    waist = 10 + _j(rng, 1.5)
    hem = 76 + _j(rng, 1.5)
    half = (12 if jeans else 15) + _j(rng, 1)
    flare = (-1.5 if jeans else 1) + _j(rng, 1)  # taper (jeans) or straight/wide legs
    crotch = 34 + _j(rng, 2)
    left, right = 30 - half, 30 + half
    pen.polygon(
        [(left, waist), (right, waist), (right + flare + 1, hem), (32 + (2 if jeans else 0), hem),
         (30, crotch), (28 - (2 if jeans else 0), hem), (left - flare - 1, hem)],
        c, o, 1.2,
    )
    pen.rect((left, waist, right, waist + 4), fill=_shade(c, 0.8), outline=o, width=0.8)  # waistband
    detail = (220, 180, 90) if jeans else _shade(c, 0.6)
    if jeans:  # pocket curves and outseam stitching
        pen.arc((left - 5, waist - 2, left + 8, waist + 12), 0, 90, detail, 0.9)
        pen.arc((right - 8, waist - 2, right + 5, waist + 12), 90, 180, detail, 0.9)
        pen.line([(left + 1, waist + 5), (left - flare, hem - 1)], detail, 0.6)
        pen.line([(right - 1, waist + 5), (right + flare, hem - 1)], detail, 0.6)
        pen.ellipse((29, waist + 1, 31, waist + 3), fill=detail)
    else:  # front creases and belt loops
        pen.line([(left + half / 2, waist + 5), (left + half / 2 - flare / 2, hem)], detail, 0.8)
        pen.line([(right - half / 2, waist + 5), (right - half / 2 + flare / 2, hem)], detail, 0.8)
        for x in (left + 3, 30, right - 3):
            pen.line([(x, waist), (x, waist + 4)], detail, 0.8)


def _draw_jeans(pen: _Pen, c: RGB, rng: np.random.Generator) -> None:
    _trousers(pen, c, rng, jeans=True)


def _draw_trousers(pen: _Pen, c: RGB, rng: np.random.Generator) -> None:
    _trousers(pen, c, rng, jeans=False)


def _draw_dresses(pen: _Pen, c: RGB, rng: np.random.Generator) -> None:
    o = _outline(c)
    flare = 20 + _j(rng, 3)
    hem = 72 + _j(rng, 3)
    waist = 34 + _j(rng, 2)

    def shape(p: _Pen, fill=c, outline=o):
        p.polygon(
            [(23, 8), (25, 8), (26, 19), (34, 19), (35, 8), (37, 8), (39, 20), (37, waist),
             (30 + flare, hem), (30 - flare, hem), (23, waist), (21, 20)],
            fill, outline, 1.2,
        )

    shape(pen)
    if rng.random() < 0.35:  # polka dots or stripes
        pen.pattern(lambda p: shape(p, 255, None), _contrast(c) if rng.random() < 0.5 else _shade(c, 0.65), rng)
        shape(pen, None, o)
    pen.rect((23, waist - 1, 37, waist + 2), fill=_shade(c, 0.65))  # waist seam / belt
    for k in range(1, 4):  # skirt folds
        x = 30 - flare + k * flare / 2
        pen.line([(30 + (x - 30) * 0.3, waist + 4), (x, hem - 1)], _shade(c, 0.8), 0.7)


def _draw_handbags(pen: _Pen, c: RGB, rng: np.random.Generator) -> None:
    o = _outline(c)
    top = 36 + _j(rng, 3)
    flare = 4 + _j(rng, 2)
    handle = 14 + _j(rng, 4)
    pen.arc((19, handle, 41, top + 14), 180, 360, _shade(c, 0.7), 2.4)  # handle

    def shape(p: _Pen, fill=c, outline=o):
        p.polygon([(12, top), (48, top), (48 + flare, 68), (45, 70), (15, 70), (12 - flare, 68)], fill, outline, 1.2)

    shape(pen)
    if rng.random() < 0.3:
        pen.pattern(lambda p: shape(p, 255, None), _shade(c, 0.7), rng, vertical=rng.random() < 0.5)
        shape(pen, None, o)
    pen.polygon([(12, top), (48, top), (46, top + 9), (14, top + 9)], _shade(c, 0.85), o)  # flap
    pen.rect((27, top + 7, 33, top + 12), fill=COLOURS["Gold"], outline=(120, 100, 30), width=0.6, radius=1)


def _draw_watches(pen: _Pen, c: RGB, rng: np.random.Generator) -> None:
    strap_w = 11 + _j(rng, 1.5)
    r = 13 + _j(rng, 2)
    strap = c if rng.random() < 0.7 else COLOURS[["Black", "Brown"][int(rng.integers(2))]]
    so = _outline(strap)
    pen.rect((30 - strap_w / 2, 4, 30 + strap_w / 2, 76), fill=strap, outline=so, radius=3)
    for y in range(8, 76, 5):  # strap links / holes
        if abs(y - 40) > r:
            pen.line([(30 - strap_w / 2 + 1, y), (30 + strap_w / 2 - 1, y)], _shade(strap, 0.7) if sum(strap) > 120 else (70, 70, 70), 0.5)
    case = COLOURS["Silver"] if rng.random() < 0.5 else COLOURS["Gold"]
    if c in (COLOURS["Silver"], COLOURS["Gold"], COLOURS["Black"]):
        case = c
    pen.rect((30 + r - 1, 37, 30 + r + 3, 43), fill=case, outline=_outline(case), radius=1)  # crown
    pen.ellipse((30 - r, 40 - r, 30 + r, 40 + r), fill=case, outline=_outline(case), width=1.2)
    dial = (250, 250, 250) if rng.random() < 0.5 else (25, 25, 30)
    hand = _contrast(dial)
    inner = r - 2.5
    pen.ellipse((30 - inner, 40 - inner, 30 + inner, 40 + inner), fill=dial)
    for k in range(12):
        a = k * np.pi / 6
        pen.line([(30 + np.cos(a) * inner * 0.8, 40 + np.sin(a) * inner * 0.8),
                  (30 + np.cos(a) * inner * 0.95, 40 + np.sin(a) * inner * 0.95)], hand, 0.6)
    a1, a2 = rng.uniform(0, 2 * np.pi, 2)
    pen.line([(30, 40), (30 + np.cos(a1) * inner * 0.55, 40 + np.sin(a1) * inner * 0.55)], hand, 1.1)
    pen.line([(30, 40), (30 + np.cos(a2) * inner * 0.8, 40 + np.sin(a2) * inner * 0.8)], hand, 0.7)


def _draw_caps(pen: _Pen, c: RGB, rng: np.random.Generator) -> None:
    o = _outline(c)
    top = 26 + _j(rng, 3)
    brim = 16 + _j(rng, 3)
    base = 52
    pen.polygon([(38, base - 3), (44 + brim, base + 1), (42 + brim, base + 5), (38, base + 3)], _shade(c, 0.8), o, 1.0)
    pen.draw.chord(pen.box(8, top, 48, base + (base - top)), 180, 360, fill=c, outline=o, width=pen.w(1.2))
    pen.rect((8, base - 2, 48, base + 2), fill=_shade(c, 0.85), outline=o, width=0.8)  # band
    pen.arc((20, top, 36, base + (base - top)), 200, 340, _shade(c, 0.65), 0.8)  # panel seam
    pen.ellipse((26.5, top - 2.5, 30.5, top + 1), fill=_shade(c, 0.7))  # button
    if rng.random() < 0.5:  # front logo
        pen.rect((14, top + 12, 26, top + 18), fill=_contrast(c), radius=1)


def _draw_sunglasses(pen: _Pen, c: RGB, rng: np.random.Generator) -> None:
    frame = c if rng.random() < 0.6 else COLOURS[["Black", "Gold", "Silver"][int(rng.integers(3))]]
    lens = _shade(c, 0.6) if sum(c) > 150 else (40, 40, 46)
    w = 22 + _j(rng, 2)
    h = 15 + _j(rng, 2)
    y0 = 34 + _j(rng, 2)
    fw = 1.6 if rng.random() < 0.5 else 0.9
    fo = _outline(frame) if sum(frame) > 600 else frame
    pen.line([(2, y0 + 1), (30 - 2 - w, y0 + 2)], fo, 1.2)  # temples
    pen.line([(58, y0 + 1), (30 + 2 + w, y0 + 2)], fo, 1.2)
    for x0 in (30 - 2 - w, 32):
        pen.draw.chord(pen.box(x0, y0 - h * 0.4, x0 + w, y0 + h), 0, 360, fill=lens, outline=fo, width=pen.w(fw))
        pen.line([(x0 + w * 0.25, y0 + 2), (x0 + w * 0.45, y0 + h * 0.3)], (200, 200, 210), 0.6)  # glint
    pen.arc((26, y0 - 1, 34, y0 + 6), 180, 360, fo, 1.2)  # bridge


@dataclass(frozen=True)
class Kind:
    """One product kind of the sample: its Kaggle attributes and how to draw it."""

    article_type: str
    """Kaggle ``articleType`` (the key in :data:`KINDS`)."""
    master_category: str
    """Kaggle ``masterCategory`` of every product of this kind."""
    sub_category: str
    """Kaggle ``subCategory`` of every product of this kind."""
    genders: dict[str, float]
    """``{gender: relative weight}`` the sample draws each product's gender from."""
    usages: dict[str, float]
    """``{usage: relative weight}`` the sample draws each product's usage from."""
    colours: tuple[str, ...]
    """:data:`COLOURS` names this kind comes in (drawn uniformly)."""
    noun: str
    """Last word(s) of the ``productDisplayName``, e.g. ``"Tshirt"``."""
    draw: Callable[[_Pen, RGB, np.random.Generator], None]
    """Draws the product with a pen, in a fill colour, with the jitter generator."""


KINDS: dict[str, Kind] = {
    k.article_type: k
    for k in (
        Kind("Heels", "Footwear", "Shoes", {"Women": 1.0}, {"Casual": 0.85, "Formal": 0.1, "Party": 0.05},
             ("Black", "Red", "Beige", "Pink", "Gold", "Silver", "Brown", "Blue"), "Heels", _draw_heels),
        Kind("Flats", "Footwear", "Shoes", {"Women": 1.0}, {"Casual": 0.9, "Ethnic": 0.1},
             ("Black", "Beige", "Pink", "Red", "Brown", "Gold", "Blue", "White"), "Flats", _draw_flats),
        Kind("Casual Shoes", "Footwear", "Shoes", {"Men": 0.5, "Women": 0.3, "Unisex": 0.2}, {"Casual": 1.0},
             ("Black", "White", "Brown", "Blue", "Grey", "Navy Blue", "Red", "Olive"), "Casual Shoes",
             _draw_casual_shoes),
        Kind("Sports Shoes", "Footwear", "Shoes", {"Men": 0.55, "Women": 0.45}, {"Sports": 1.0},
             ("White", "Black", "Grey", "Blue", "Navy Blue", "Red", "Silver", "Pink"), "Sports Shoes",
             _draw_sports_shoes),
        Kind("Tshirts", "Apparel", "Topwear", {"Men": 0.6, "Women": 0.25, "Boys": 0.1, "Girls": 0.05},
             {"Casual": 0.85, "Sports": 0.15},
             ("Black", "White", "Grey", "Red", "Blue", "Navy Blue", "Green", "Yellow", "Pink", "Purple", "Orange"),
             "Tshirt", _draw_tshirts),
        Kind("Shirts", "Apparel", "Topwear", {"Men": 0.8, "Women": 0.15, "Boys": 0.05}, {"Casual": 0.7, "Formal": 0.3},
             ("White", "Blue", "Black", "Grey", "Green", "Pink", "Purple", "Maroon", "Navy Blue"), "Shirt",
             _draw_shirts),
        Kind("Jeans", "Apparel", "Bottomwear", {"Men": 0.55, "Women": 0.4, "Girls": 0.05}, {"Casual": 1.0},
             ("Blue", "Navy Blue", "Black", "Grey"), "Jeans", _draw_jeans),
        Kind("Trousers", "Apparel", "Bottomwear", {"Men": 0.75, "Women": 0.25}, {"Formal": 0.5, "Casual": 0.5},
             ("Black", "Grey", "Beige", "Navy Blue", "Brown", "Olive"), "Trousers", _draw_trousers),
        Kind("Dresses", "Apparel", "Dress", {"Women": 0.85, "Girls": 0.15}, {"Casual": 0.8, "Party": 0.2},
             ("Black", "Red", "Blue", "Pink", "Green", "Yellow", "Purple", "Maroon", "White"), "Dress", _draw_dresses),
        Kind("Handbags", "Accessories", "Bags", {"Women": 0.95, "Unisex": 0.05}, {"Casual": 1.0},
             ("Black", "Brown", "Beige", "Red", "Pink", "Blue", "White", "Maroon"), "Handbag", _draw_handbags),
        Kind("Watches", "Accessories", "Watches", {"Men": 0.55, "Women": 0.4, "Unisex": 0.05},
             {"Casual": 0.9, "Formal": 0.1}, ("Black", "Silver", "Gold", "Brown", "Blue", "White"), "Watch",
             _draw_watches),
        Kind("Caps", "Accessories", "Headwear", {"Unisex": 0.5, "Men": 0.4, "Women": 0.1}, {"Casual": 0.7, "Sports": 0.3},
             ("Black", "Blue", "Red", "White", "Navy Blue", "Green", "Grey", "Yellow"), "Cap", _draw_caps),
        Kind("Sunglasses", "Accessories", "Eyewear", {"Men": 0.5, "Women": 0.3, "Unisex": 0.2}, {"Casual": 1.0},
             ("Black", "Brown", "Gold", "Silver", "Blue", "Grey"), "Sunglasses", _draw_sunglasses),
    )
}
"""The drawn kinds, keyed by Kaggle ``articleType``; footwear first (the default subset)."""


def draw_product(
    article_type: str, colour: str, rng: np.random.Generator, size: tuple[int, int] = IMAGE_SIZE
) -> Image.Image:
    """Draw one product picture: an RGB image of ``size`` (width, height, pixels) on white.

    ``article_type`` is one of :data:`KINDS`, ``colour`` one of :data:`COLOURS`.
    ``rng`` supplies the per-item jitter (size, position, proportions, colour
    tint, patterns), so the same generator state draws the same picture.
    """
    kind = KINDS.get(article_type)
    if kind is None:
        raise CatalogError(f"cannot draw article type {article_type!r}; expected one of {', '.join(KINDS)}")
    base = COLOURS.get(colour)
    if base is None:
        raise CatalogError(f"cannot draw colour {colour!r}; expected one of {', '.join(COLOURS)}")
    width, height = int(size[0]), int(size[1])
    if width < 1 or height < 1:
        raise CatalogError(f"image size must be positive integers (width, height); got {size!r}")
    # colour jitter: mostly brightness, a little hue (dark colours must stay neutral)
    tint = rng.integers(-10, 11) + rng.integers(-4, 5, 3)
    fill: RGB = tuple(int(np.clip(v + t, 0, 255)) for v, t in zip(base, tint))  # type: ignore[assignment]
    canvas = Image.new("RGB", (width * _SUPERSAMPLE, height * _SUPERSAMPLE), _BACKGROUND)
    pen = _Pen(canvas, scale=float(rng.uniform(0.84, 1.0)), dx=_j(rng, 3), dy=_j(rng, 3))
    kind.draw(pen, fill, rng)
    return canvas.resize((width, height), Image.Resampling.LANCZOS)

