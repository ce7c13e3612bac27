"""Point labels that do not overprint: a greedy label placer in display pixels.

Each label takes the first free spot inside the axes, trying right of its point, left of it,
then a label height lower, higher, two lower, ... (a moved label gets a leader line). A spot is
free where it touches no label, marker (kept a word space apart), error bar or leader line,
and its own leader crosses no label or marker. A few placing orders are tried; the layout
with the fewest overlaps, then crossings, then the least total shift is kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.transforms import Bbox

_RADIUS = 4.0  # half the size of a marker's keep-out box (pixels)
_GAP = 6.0  # from a point to the near edge of a label beside it
_SPACE = 10.0  # kept free left and right of a placed label, so two never read as one


def place_labels(
    ax: Axes,
    points: Sequence[tuple[float, float]],
    labels: Sequence[str],
    *,
    fontsize: float = 7,
    bars: Sequence[tuple[float, float, float]] = (),
) -> list:
    """Annotate each point with its label; ``bars``: error bars ``(x, low, high)`` in data
    coordinates. The axes' layout must be final (``tight_layout`` first); returns the texts."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    xy = ax.transData.transform(np.asarray(points, dtype=float).reshape(-1, 2))
    sizes = []
    for label in labels:
        probe = ax.text(0, 0, label, fontsize=fontsize)
        sizes.append(tuple(probe.get_window_extent(renderer).size))
        probe.remove()
    ends = np.asarray(bars, dtype=float).reshape(-1, 3)
    low, high = ax.transData.transform(ends[:, [0, 1]]), ax.transData.transform(ends[:, [0, 2]])
    obstacles = np.stack([low[:, 0] - _RADIUS, low[:, 1], high[:, 0] + _RADIUS, high[:, 1]], axis=1)
    n = len(labels)
    rng = np.random.default_rng(0)
    orders = [
        sorted(range(n), key=lambda i: (-xy[i][1], xy[i][0])),
        sorted(range(n), key=lambda i: (-xy[i][1], -xy[i][0])),
        sorted(range(n), key=lambda i: -sizes[i][0]),
        *(rng.permutation(n).tolist() for _ in range(5)),
    ]
    layouts = [
        _layout(xy, sizes, frame, order, sides, obstacles)
        for sides in ((1, -1, 0), (0, 1, -1))
        for order in orders
    ]
    _, layout = min(layouts, key=lambda r: r[0])  # the first of equal cost
    to_points = 72.0 / fig.dpi
    texts = []
    leader = dict(arrowstyle="-", color="0.5", lw=0.6, shrinkA=0, shrinkB=3)
    for i, (box, side, dy) in sorted(layout.items()):
        anchor = {1: box.x0, -1: box.x1, 0: (box.x0 + box.x1) / 2}[side]
        offset = ((anchor - xy[i][0]) * to_points, dy * to_points)
        ha = {1: "left", -1: "right", 0: "center"}[side]
        kw = dict(textcoords="offset points", ha=ha, va="center", fontsize=fontsize)
        arrow = leader if abs(dy) > 0.5 else None
        texts.append(ax.annotate(labels[i], points[i], xytext=offset, arrowprops=arrow, **kw))
    return texts


def _layout(xy: np.ndarray, sizes, frame: Bbox, order, sides, obstacles: np.ndarray):
    """Place the labels greedily in ``order``: ``(cost, {index: (box, side, dy)})``. A moved
    label tries ``sides``: right of its point (1), left (-1), centred (0). Boxes (and
    ``obstacles``) are ``[x0, y0, x1, y1]`` arrays in pixels."""
    step = max(h for _, h in sizes) + 3.0 if sizes else 0.0
    shifts = [0.0] + [s * k * step for k in range(1, len(order) + 2) for s in (-1, 1)]
    markers = np.concatenate([xy - _RADIUS, xy + _RADIUS], axis=1)
    wide = markers + np.array([-_SPACE, 0.0, _SPACE, 0.0])  # other points: a word space apart
    limits = np.asarray(frame.extents)
    margin = np.array([-_SPACE, -1.0, _SPACE, 1.0])  # around a placed label: no label touches
    texts = np.zeros((0, 4))  # the placed labels: no leader line may cross one
    leaders = []  # sample points of each placed leader line, outside its label
    layout, total = {}, np.zeros(4)
    for i in order:
        (px, py), (w, h) = xy[i], sizes[i]
        others = np.delete(markers, i, axis=0)
        keep_out = np.vstack([markers[i : i + 1], np.delete(wide, i, axis=0), obstacles])
        best = None
        for dy in shifts:
            for side in (1, -1) if dy == 0 else sides:
                x0 = {1: px + _GAP, -1: px - _GAP - w, 0: px - w / 2}[side]
                box = np.array([x0, py + dy - h / 2, x0 + w, py + dy + h / 2])
                outside = bool(np.any(box[:2] < limits[:2]) or np.any(box[2:] > limits[2:]))
                overlaps = _overlaps(box, keep_out) + _overlaps(box, texts + margin)
                if best is not None and (outside, overlaps) > best[0][:2]:
                    continue  # cannot beat the best spot so far
                crossings = sum(bool(_inside(line, box[None]).any()) for line in leaders)
                if abs(dy) > 0.5:
                    line = _leader((px, py), box)
                    crossings += _crossed(line, box, texts) + _crossed(line, box, others)
                score = (outside, overlaps, crossings, abs(dy))
                if best is None or score < best[0]:
                    best = (score, box, side, dy)
            if best[0][:3] == (False, 0, 0):
                break
        score, box, side, dy = best
        total += np.asarray(score, dtype=float)
        texts = np.vstack([texts, box])
        if abs(dy) > 0.5:
            line = _leader((px, py), box)
            leaders.append(line[~_inside(line, box[None])[:, 0]])
        layout[i] = (Bbox.from_extents(*box), side, dy)
    return tuple(total), layout


def _leader(point: tuple[float, float], box: np.ndarray) -> np.ndarray:
    """Sample points [33, 2] of the leader line from a data point to its label's centre."""
    t = np.linspace(0.0, 1.0, 33)[:, None]
    return (1 - t) * np.asarray(point) + t * (box[:2] + box[2:]) / 2


def _inside(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """[points, boxes] booleans: whether each point lies in each box."""
    x, y = points[:, :1], points[:, 1:]
    return (x >= boxes[:, 0]) & (x <= boxes[:, 2]) & (y >= boxes[:, 1]) & (y <= boxes[:, 3])


def _crossed(line: np.ndarray, own: np.ndarray, boxes: np.ndarray) -> int:
    """How many ``boxes`` a leader line passes through, outside its own label ``own``."""
    free = line[~_inside(line, own[None])[:, 0]]
    return int(_inside(free, boxes).any(axis=0).sum()) if len(boxes) and len(free) else 0


def _overlaps(box: np.ndarray, boxes: np.ndarray) -> int:
    """How many ``boxes`` overlap ``box`` (touching edges do not count)."""
    if not len(boxes):
        return 0
    w = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])
    h = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])
    return int(((w > 0) & (h > 0)).sum())
