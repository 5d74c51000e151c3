"""Figures as PNG and GIF bytes: identikit grids, curves, histograms, animations.

Functions take results (arrays, numbers) and return PNG bytes; they never compute results and
never show windows, so callers decide where pictures go (atomically written files, HTML pages).

An image is grey, ``(H, W)`` or ``(1, H, W)``, or in colour, ``(3, H, W)`` channels first as
identikit keeps them (red, green, blue); images of another number of channels are shown as the
grey mean of their channels. Grey images are drawn exactly as before colour existed (the same
bytes). Small images are enlarged by whole pixels so that an 8 x 8 image is still seen.
"""

from __future__ import annotations

import io
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # no display: files only

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

# Pixels between images in a grid, across and above (room for the label).
_GAP = 3
_LABEL = 9
# The side below which an image is enlarged by whole pixels in a grid (an 8 x 8 image becomes
# 24 x 24); from twice that side on, the gaps and labels grow with the image. Images of 24 to
# 47 pixels a side are drawn as they are.
_GRID_SIDE = 24
# The side, in pixels, that a single identikit, an animation's tile and a nearest pair's tile
# aim at when no scale is given: 8, 4 and 3 screen pixels a pixel for MNIST's images.
_PNG_SIDE = 224
_GIF_SIDE = 112
_PAIR_SIDE = 84


def _display(image: np.ndarray) -> np.ndarray:
    """One image as matplotlib and Pillow take it: ``(H, W)`` grey or ``(H, W, 3)`` colour,
    clipped to [0, 1]."""
    array = np.asarray(image)
    if array.ndim == 3:
        # Channels first: one channel is grey, three are red, green, blue, others are averaged.
        if array.shape[0] == 3:
            array = np.moveaxis(array, 0, -1)
        else:
            array = array[0] if array.shape[0] == 1 else array.mean(axis=0)
    clipped: np.ndarray = np.clip(array, 0, 1)
    return clipped


def _is_colour(image: np.ndarray) -> bool:
    return bool(np.ndim(image) == 3 and np.shape(image)[0] == 3)


def _tile(image: np.ndarray, width: int, height: int, *, rounded: bool = False) -> Image.Image:
    """One image as a Pillow image of ``width`` x ``height`` pixels, enlarged by nearest
    neighbours: mode "L" for a grey image, "RGB" for a colour one. Levels are truncated, or
    ``rounded`` (as the single identikit PNGs have always been)."""
    levels = _display(image) * 255
    pixels = (levels.round() if rounded else levels).astype(np.uint8)
    tile = Image.fromarray(pixels, "RGB" if pixels.ndim == 3 else "L")
    return tile.resize((width, height), Image.Resampling.NEAREST)


def _scale(image: np.ndarray, side: int, scale: int | None) -> int:
    """Screen pixels per image pixel: ``scale`` when given, else as many as bring the image's
    longer side nearest ``side`` from below (at least one)."""
    if scale is not None:
        return scale
    return max(1, side // int(max(np.shape(image)[-2:])))


def _png(figure: Figure, *, tight: bool = True) -> bytes:
    # A tight bounding box costs a second drawing of the figure: figures that set their own
    # margins skip it.
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight" if tight else None)
    plt.close(figure)
    return buffer.getvalue()


def confidence_label(p: float) -> str:
    """A confidence short enough for a label, with the digits that tell two of them apart.

    Below 0.999 three decimals do; above, every label would read "1.000", so the distance
    from certainty is shown instead: 0.99997 is "1-3.0e-5".
    """
    if p < 0.999:
        return f"{p:.3f}"
    shortfall = 1.0 - p
    if shortfall <= 0:
        return "1"
    mantissa, exponent = f"{shortfall:.1e}".split("e")
    return f"1-{mantissa}e{int(exponent)}"


# The most classes of one run each drawn as a single row of axes, one axes an image; more go
# into the mosaic, one class a row: matplotlib's constrained layout of 1,000 axes (every class
# of an ImageNet model, one run each) took over 10 minutes.
SINGLE_ROW_CLASSES = 20


def identikit_grid(
    images: np.ndarray,
    digits: Sequence[int] | np.ndarray,
    confidences: Sequence[float],
    *,
    target: float = 0.99,
    title: str = "",
    names: Sequence[str] = (),
) -> bytes:
    """Digits as rows, runs as columns; each image upscaled and labelled with its class (its
    name in ``names``, else its number) and its confidence.

    Labels of runs that reached ``target`` are black, the others red.
    """
    digit_list = [int(d) for d in digits]
    rows = sorted(set(digit_list))
    columns = max(digit_list.count(d) for d in rows)
    labels = [class_label(d, names) for d in digit_list]
    if columns == 1 and len(rows) <= SINGLE_ROW_CLASSES:  # a single row of few classes
        return _single_row(images, labels, confidences, target=target, title=title)
    # One axes holding every image in a single mosaic, labels as text: one axes per image took
    # 2.5 s to draw for 10 x 10 images and 27 s for 10 x 100; this takes 0.23 s and 2.8 s.
    # Every image has the same height and width, read from the images themselves.
    cells = _Cells.of(images[0])
    mosaic = _blank_mosaic(images[0], (len(rows) * cells.height, columns * cells.width))
    # Sizes in inches: 1.1 inches an image across (twice that and more for images of 192
    # pixels and more, so that they are not shrunk past one screen pixel a pixel or two), the
    # height that keeps pixels square, and margins that do not grow with the grid (room for
    # the title above).
    width = 1.1 * columns * max(1, cells.image_w // (4 * _GRID_SIDE))
    height = width * mosaic.shape[0] / mosaic.shape[1]
    margin, top_margin = 0.1, 0.5 if title else 0.1
    figure = plt.figure(figsize=(width + 2 * margin, height + margin + top_margin))
    figure_w, figure_h = figure.get_size_inches()
    ax = figure.add_axes(
        (margin / figure_w, margin / figure_h, width / figure_w, height / figure_h)
    )
    ax.axis("off")
    seen = dict.fromkeys(rows, 0)
    for image, digit, label, confidence in zip(
        images, digit_list, labels, confidences, strict=True
    ):
        top, left = cells.corner(rows.index(digit), seen[digit])
        seen[digit] += 1
        mosaic[top : top + cells.image_h, left : left + cells.image_w] = cells.pixels(image)
        ax.text(
            left + (cells.image_w - 1) / 2,
            top - 1.5 * cells.unit,
            f"{label}: {confidence_label(confidence)}",
            fontsize=8,
            ha="center",
            va="bottom",
            color="black" if confidence >= target else "red",
        )
    _show_mosaic(ax, mosaic)
    if title:
        figure.suptitle(title, fontsize=10, y=1 - 0.1 / figure_h, va="top")
    return _png(figure, tight=False)


def _blank_mosaic(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A mosaic of ``size`` for images like ``image``, white where no image is (grey: nan,
    drawn white)."""
    if _is_colour(image):
        return np.ones((*size, 3), np.float32)
    return np.full(size, np.nan, np.float32)


def _show_mosaic(ax: Axes, mosaic: np.ndarray) -> None:
    """Draw a grid's mosaic: RGB (H, W, 3) as it is, grey (H, W) with white where it is nan."""
    if mosaic.ndim == 3:
        ax.imshow(mosaic, interpolation="nearest", aspect="auto")
        return
    cmap = plt.get_cmap("gray").with_extremes(bad="white")
    ax.imshow(mosaic, cmap=cmap, vmin=0, vmax=1, interpolation="nearest", aspect="auto")


@dataclass(frozen=True)
class _Cells:
    """The cells of a grid's mosaic, in mosaic pixels: small images are enlarged by whole
    pixels (``enlarge``); around large ones the gaps and labels grow (``unit``)."""

    enlarge: int
    unit: int
    image_h: int  # as drawn, enlarged
    image_w: int

    @classmethod
    def of(cls, image: np.ndarray) -> _Cells:
        height, width = (int(d) for d in np.shape(image)[-2:])
        side = max(height, width)
        enlarge = max(1, _GRID_SIDE // side)
        return cls(enlarge, max(1, side // (2 * _GRID_SIDE)), height * enlarge, width * enlarge)

    @property
    def width(self) -> int:
        return self.image_w + _GAP * self.unit

    @property
    def height(self) -> int:
        return self.image_h + _LABEL * self.unit

    def corner(self, row: int, column: int) -> tuple[int, int]:
        """The top left pixel of the image in ``row``, ``column`` (its label above it)."""
        return row * self.height + _LABEL * self.unit, column * self.width + _GAP * self.unit // 2

    def pixels(self, image: np.ndarray) -> np.ndarray:
        enlarged: np.ndarray = _display(image).repeat(self.enlarge, 0).repeat(self.enlarge, 1)
        return enlarged


def class_label(digit: int, names: Sequence[str] = ()) -> str:
    """How a figure names class ``digit``: its name in ``names`` where there is one, else its
    number (MNIST's names are its numbers, so its figures read as they always did)."""
    return names[digit] if 0 <= digit < len(names) else str(digit)


def _single_row(
    images: np.ndarray,
    labels: list[str],
    confidences: Sequence[float],
    *,
    target: float,
    title: str,
) -> bytes:
    figure, axes = plt.subplots(
        1, len(labels), squeeze=False, figsize=(1.1 * len(labels) + 0.2, 1.9), layout="constrained"
    )
    for ax, image, label, confidence in zip(axes[0], images, labels, confidences, strict=True):
        ax.axis("off")
        ax.imshow(_display(image), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(
            f"{label}: {confidence_label(confidence)}",
            fontsize=8,
            color="black" if confidence >= target else "red",
        )
    if title:
        figure.suptitle(title, fontsize=10)
    return _png(figure)


def certainty_histogram(
    sources: Mapping[str, Sequence[float] | np.ndarray], *, title: str = ""
) -> bytes:
    """Histograms of the largest softmax output, one panel per image source, shared axes."""
    names = list(sources)
    figure, axes = plt.subplots(
        len(names),
        1,
        sharex=True,
        squeeze=False,
        figsize=(6, 1.3 * len(names) + 0.6),
        layout="constrained",
    )
    bins = np.linspace(0, 1, 41)
    for ax, name in zip(axes[:, 0], names, strict=True):
        values = np.asarray(sources[name], dtype=float)
        weights = np.full(len(values), 1 / max(len(values), 1))
        ax.hist(values, bins=bins, weights=weights, color="tab:blue")
        ax.axvline(0.6, color="grey", lw=0.8, ls="--")
        ax.axvline(0.9, color="grey", lw=0.8, ls=":")
        ax.set_ylim(0, 1)
        ax.set_ylabel("share", fontsize=8)
        ax.text(0.01, 0.8, name, transform=ax.transAxes, fontsize=9)
    axes[-1, 0].set_xlabel("largest softmax output")
    if title:
        figure.suptitle(title, fontsize=10)
    return _png(figure)


def convergence_curves(
    curves: Mapping[str, tuple[Sequence[int], Sequence[float]]],
    *,
    threshold: float,
    max_queries: int,
    title: str = "",
    white_box: Collection[str] = (),
) -> bytes:
    """Fraction of runs that reached ``threshold`` against queries spent, one step curve each.

    ``white_box``: the curves whose queries are forward and backward passes, not scores alone
    (those of white-box strategies); their legend entries say so.
    """
    figure, ax = plt.subplots(figsize=(6.5, 4), layout="constrained")
    for name, (queries, fractions) in curves.items():
        xs = [1, *queries, max_queries]
        ys = [0.0, *fractions, fractions[-1] if fractions else 0.0]
        label = f"{name} (query = forward + backward pass)" if name in white_box else name
        ax.step(xs, ys, where="post", label=label, lw=1.6)
    ax.set_xscale("log")
    ax.set_xlim(1, max_queries)
    ax.set_ylim(0, 1.02)
    # A white-box step costs a forward and a backward pass per image, about three forward
    # passes; counting it as one query keeps the budgets equal but not the work.
    ax.set_xlabel(
        "model queries (white-box: one query = one forward + backward pass)"
        if white_box
        else "model queries"
    )
    ax.set_ylabel(f"share of runs at confidence >= {threshold}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return _png(figure)


def animation_gif(
    trajectories: Sequence[np.ndarray],
    labels: Sequence[str],
    *,
    confidences: Sequence[Sequence[float]] | None = None,
    frames: int = 48,
    scale: int | None = None,
    milliseconds: int = 120,
) -> bytes:
    """An animated GIF of several runs side by side, each evolving from its start image.

    ``trajectories[i]`` is run i's best image after each iteration (T_i, H, W) grey or
    (T_i, 3, H, W) colour; the runs are sampled at ``frames`` evenly spaced moments of the
    longest one (a finished run holds its last image), and the last frame is held for a second.
    ``confidences[i]``, when given, is run i's best confidence after each iteration (T_i
    values), written under its image. ``scale``: screen pixels per image pixel (default: 4
    for MNIST's 28 x 28, more for smaller images, fewer for larger).
    """
    longest = max(len(t) for t in trajectories)
    moments = np.unique(np.linspace(0, longest - 1, min(frames, longest)).round().astype(int))
    first = trajectories[0][0]
    image_h, image_w = np.shape(first)[-2:]
    scale = _scale(first, _GIF_SIDE, scale)
    width, size = image_w * scale, image_h * scale
    counter = 14 if confidences is not None else 0  # room for the confidence under each image
    colour = _is_colour(first)
    pictures = []
    for moment in moments:
        canvas = Image.new(
            "RGB" if colour else "L",
            (len(trajectories) * (width + 4) + 4, size + 18 + counter),
            "white" if colour else 255,
        )
        draw = ImageDraw.Draw(canvas)
        ink = "black" if colour else 0
        for i, (trajectory, label) in enumerate(zip(trajectories, labels, strict=True)):
            at = min(moment, len(trajectory) - 1)
            left = 4 + i * (width + 4)
            canvas.paste(_tile(trajectory[at], width, size), (left, 16))
            draw.text((left, 2), _fitted(draw, label, width), fill=ink)
            if confidences is not None:
                history = confidences[i]
                value = history[min(at, len(history) - 1)]
                draw.text((left, size + 19), confidence_label(value), fill=ink)
        # A colour frame gets a palette of its own colours; a grey one the fixed palette.
        pictures.append(
            canvas.convert("P", palette=Image.Palette.ADAPTIVE) if colour else canvas.convert("P")
        )
    buffer = io.BytesIO()
    durations = [milliseconds] * (len(pictures) - 1) + [1000]
    pictures[0].save(
        buffer, format="GIF", save_all=True, append_images=pictures[1:], duration=durations, loop=0
    )
    return buffer.getvalue()


def identikit_png(image: np.ndarray, *, scale: int | None = None) -> bytes:
    """One image, grey (H x W) or colour (3 x H x W), as a PNG, each pixel a ``scale`` x
    ``scale`` square (default: 8 for MNIST's 28 x 28, more for smaller images, fewer for
    larger)."""
    height, width = np.shape(image)[-2:]
    scale = _scale(image, _PNG_SIDE, scale)
    picture = _tile(image, width * scale, height * scale, rounded=True)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def identikit_strip(
    images: Sequence[np.ndarray],
    *,
    side: int = 56,
    gap: int = 4,
    labels: Sequence[str] = (),
) -> bytes:
    """Images side by side in one row, each ``side`` pixels on its longer side (enlarged by
    nearest neighbours), ``gap`` white pixels apart: a PNG for a summary table's row.
    ``labels``, when given, caption each image (its class's name), cut to the image's width."""
    if not images:
        raise ValueError("a strip of no images")
    scale = _scale(images[0], side, None)
    height, width = (n * scale for n in np.shape(images[0])[-2:])
    colour = any(_is_colour(image) for image in images)
    top = _CAPTION if labels else 0
    strip = Image.new(
        "RGB" if colour else "L", (len(images) * (width + gap) - gap, height + top), 255
    )
    draw = ImageDraw.Draw(strip)
    for i, image in enumerate(images):
        tile = _tile(image, width, height, rounded=True)
        strip.paste(tile.convert("RGB") if colour else tile, (i * (width + gap), top))
        if labels:
            text = _fitted(draw, labels[i], width)
            draw.text((i * (width + gap), 0), text, fill="black" if colour else 0)
    buffer = io.BytesIO()
    strip.save(buffer, format="PNG")
    return buffer.getvalue()


# Pixels above a strip's images for their captions (Pillow's default font is 11 pixels high).
_CAPTION = 12


def drawable(text: str) -> str:
    """``text`` as Pillow's built-in bitmap font can draw it: characters outside Latin-1
    become "?" (a class name in any script still labels its image, if not legibly)."""
    return text.encode("latin-1", "replace").decode("latin-1")


def _fitted(draw: ImageDraw.ImageDraw, text: str, width: int) -> str:
    """``text`` cut (ending in "~") to fit ``width`` pixels, so captions never overlap."""
    text = drawable(text)
    if draw.textlength(text) <= width:
        return text
    while text and draw.textlength(text + "~") > width:
        text = text[:-1]
    return text + "~"


def nearest_pairs(
    images: np.ndarray,
    digits: Sequence[int],
    nearest: np.ndarray,
    nearest_labels: Sequence[int],
    *,
    scale: int | None = None,
    names: Sequence[str] = (),
) -> bytes:
    """Each identikit beside its nearest real training image: classes as rows, runs as columns.

    ``images`` and ``nearest`` (the real images, in [0, 1]) are (N, H, W) grey or
    (N, 3, H, W) colour; ``nearest_labels`` are the real images' classes; a pair whose real
    image is of another class is labelled in red. ``scale``: screen pixels per image pixel
    (default: 3 for MNIST's 28 x 28). ``names`` name the classes in the labels (else their
    numbers), each cut to its pair's width.
    """
    rows = sorted(set(int(d) for d in digits))
    columns = max(list(digits).count(d) for d in rows)
    image_h, image_w = np.shape(images[0])[-2:]
    scale = _scale(images[0], _PAIR_SIDE, scale)
    width, size, gap = image_w * scale, image_h * scale, 8
    cell_w, cell_h = 2 * width + 2 + gap, size + 14
    canvas = Image.new("RGB", (columns * cell_w + gap, len(rows) * cell_h + 4), "white")
    draw = ImageDraw.Draw(canvas)
    seen = dict.fromkeys(rows, 0)
    for image, digit, real, label in zip(images, digits, nearest, nearest_labels, strict=True):
        row, column = rows.index(int(digit)), seen[int(digit)]
        seen[int(digit)] += 1
        left, top = gap + column * cell_w, 4 + row * cell_h
        for offset, picture in ((0, image), (width + 2, real)):
            canvas.paste(_tile(picture, width, size).convert("RGB"), (left + offset, top + 12))
        colour = "black" if int(label) == int(digit) else "red"
        caption = f"{class_label(int(digit), names)}  nearest: {class_label(int(label), names)}"
        draw.text((left, top), _fitted(draw, caption, cell_w - gap), fill=colour)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


# The most classes whose names label a transfer matrix's axes.
_NAMED_AXES = 40


def transfer_matrix(
    matrix: Sequence[Sequence[int]],
    *,
    judge: str,
    names: Sequence[str] = (),
    noun: str = "class",
) -> bytes:
    """A judge's verdicts: rows the intended class, columns what the judge calls it, both
    axes labelled by the classes' ``names`` (else their numbers); ``noun`` is what a class is
    called ("digit" where the classes are digits)."""
    counts = np.asarray(matrix, dtype=float)
    shares = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    # Room for the names: a wider figure for more classes, long names turned on the x axis;
    # past _NAMED_AXES classes no names fit, and the figure stops growing.
    classes = counts.shape[1]
    labels = [class_label(c, names) for c in range(classes)] if classes <= _NAMED_AXES else []
    longest = max((len(label) for label in labels), default=1)
    side = min(max(3.8, 0.3 * classes), 0.3 * _NAMED_AXES)
    figure, ax = plt.subplots(figsize=(side + 0.4, side), layout="constrained")
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (row, column), value in np.ndenumerate(counts):
        if value:
            ax.text(
                column,
                row,
                f"{int(value)}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if shares[row, column] > 0.6 else "black",
            )
    if labels:
        ax.set_xticks(range(classes), labels, rotation=90 if longest > 2 else 0, fontsize=7)
        ax.set_yticks(range(counts.shape[0]), labels[: counts.shape[0]], fontsize=7)
    ax.set_xlabel(f"{judge} calls it")
    ax.set_ylabel(f"intended {noun}")
    ax.set_title(f"judge: {judge}", fontsize=10)
    return _png(figure)
