"""Procedural CLEVR-like scenes rendered by a vectorised torch ray caster (no Blender).

Stands in for "CLEVR with masks" (DeepMind multi-object datasets; paper Section 4.1, CLEVR6 object
discovery) and CLEVR v1.0 scenes (Section 4.2, CLEVR10 set prediction). Scene sampling follows
clevr-dataset-gen (see ``clevr_scene``); this module renders the scenes, packs them into the common
generator contract and holds the reference preprocessing (``preprocess_clevr``).

Renderer: pinhole camera (35 mm lens, 32 mm horizontal sensor) at CLEVR's jittered camera location looking
at the origin; an infinite grey ground plane z = 0; cubes (z-rotated boxes), spheres and upright
cylinders, intersected analytically. Three point lights (key / fill / back, jittered) with hard shadows
from shadow rays, plus ambient light. Rubber is Lambertian; metal is a weak Lambertian term plus Blinn-Phong
highlights and a tinted reflection of a simple environment (ground / sky, no inter-object reflections).
No anti-aliasing (one ray per pixel). Colours are computed directly in display space: a rubber surface
facing the key light shows roughly its CLEVR base colour.

Speed: pixels are stored block-major (tiles of ``BLOCK`` x ``BLOCK`` pixels). Rays are only tested against
an object in the tiles covered by the object's projected screen rectangle; shadow rays only in the tiles
covered by the projected rectangle of the object's shadow volume for that light, after a tile-level and a
pixel-level bounding-sphere test. The (tile, object) pairs are enumerated with ``repeat_interleave`` and
hits are reduced with ``scatter_reduce``, so the work grows with the objects' screen area, not with
pixels x objects.

Determinism: scene i of a stream is a pure function of (seed, i, variant, image size): it is sampled from
its own RNG ``np.random.default_rng([seed, 0xC1E5, variant_id, i])`` (which also feeds the visibility
re-sampling), so ``generate(seed, 100, 10)`` equals ``generate(seed, 0, 200)[100:110]``.
Note CLEVR's quirk: ``rotation`` is stored in degrees but Blender receives the same number as radians;
the renderer reproduces that (a cube is turned by ``rotation`` radians).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from slotlab.data import clevr_scene as cs

IMAGE_SIZE = (240, 320)  # (H, W), DeepMind's CLEVR with masks
VARIANTS: dict[str, dict] = {
    "clevr6": {"id": 0, "min_objects": 3, "max_objects": 6},
    "clevr10": {"id": 1, "min_objects": 3, "max_objects": 10},
    # Not a paper dataset: small scenes of 1-3 objects for the CPU set-prediction preset.
    "clevr3": {"id": 2, "min_objects": 1, "max_objects": 3},
}
DEFAULT_VARIANT = "clevr6"
MAX_OBJECTS = {name: v["max_objects"] for name, v in VARIANTS.items()}
BATCH = 16  # scenes rendered together (larger batches fall out of the CPU caches)
MAX_VISIBILITY_ROUNDS = 100
BLOCK = 8  # pixel tile size (culling granularity)
LANES = BLOCK * BLOCK

# Shading constants (display space).
AMBIENT = 0.25
LIGHT_RGB = np.array(
    [
        [1.0, 0.93, 0.82],  # key, warm (CLEVR / Kubric 0xffedd0)
        [0.76, 0.82, 1.0],  # fill, cool (0xc2d0ff)
        [1.0, 1.0, 1.0],  # back
    ],
    dtype=np.float32,
) * np.array([[0.85], [0.25], [0.22]], dtype=np.float32)
GROUND_ALBEDO = 0.62
SKY = 0.75
METAL_DIFFUSE = 0.3
METAL_REFLECT = 0.75
SHININESS = 60.0
EPS = 1e-4

_TAG = 0xC1E5
_BOUND = torch.tensor([0.0, 3.0**0.5, 1.0, 2.0**0.5])  # bounding-sphere radius / r, by shape code


# ----------------------------------------------------------------------------------------------------------
# camera
def _focal_px(width: int) -> float:
    return cs.FOCAL_LENGTH_MM / cs.SENSOR_WIDTH_MM * width


def project(points: np.ndarray | torch.Tensor, camera: np.ndarray | torch.Tensor, size: tuple[int, int]):
    """Project world points [..., K, 3] for cameras [..., 3] to (px, py, depth) [..., K] (continuous pixels).

    px grows to the right, py downwards; depth is the distance along the viewing axis (Blender's
    world_to_camera_view z). CLEVR's ``pixel_coords`` are (round(px), round(py), depth).
    """
    h, w = size
    pts = torch.as_tensor(points, dtype=torch.float64)
    cam = torch.as_tensor(camera, dtype=torch.float64)
    rot = torch.from_numpy(cs.CAMERA_ROTATION)
    c = (pts - cam[..., None, :]) @ rot.T  # [..., K, 3] camera coordinates
    depth = -c[..., 2]
    f = _focal_px(w)
    px = w / 2 + f * c[..., 0] / depth
    py = h / 2 - f * c[..., 1] / depth
    return px, py, depth


class _Grid:
    """Pixel grid of an (h, w) image padded to whole BLOCK x BLOCK tiles, stored tile-major."""

    def __init__(self, h: int, w: int):
        self.h, self.w = h, w
        self.hb, self.wb = -(-h // BLOCK), -(-w // BLOCK)
        self.nblk = self.hb * self.wb
        self.p = self.nblk * LANES  # pixels incl. padding
        hp, wp = self.hb * BLOCK, self.wb * BLOCK
        f = _focal_px(w)
        ys = (torch.arange(hp, dtype=torch.float64) + 0.5 - h / 2) / f
        xs = (torch.arange(wp, dtype=torch.float64) + 0.5 - w / 2) / f
        cam = torch.stack(
            [
                xs[None, :].expand(hp, wp),
                -ys[:, None].expand(hp, wp),
                torch.full((hp, wp), -1.0, dtype=xs.dtype),
            ],
            -1,
        )  # [Hp, Wp, 3] camera coordinates
        d = cam @ torch.from_numpy(cs.CAMERA_ROTATION)  # camera -> world (rotation rows are camera axes)
        d = (d / d.norm(dim=-1, keepdim=True)).float()
        self.dirs = self.to_tiles(d[None])[0]  # [nblk * LANES, 3] unit world directions

    def to_tiles(self, x: torch.Tensor) -> torch.Tensor:
        """[N, Hp, Wp, C] image layout -> [N, nblk * LANES, C] tile-major layout."""
        n, c = x.shape[0], x.shape[-1]
        x = x.reshape(n, self.hb, BLOCK, self.wb, BLOCK, c).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(n, self.p, c)

    def to_image(self, x: torch.Tensor) -> torch.Tensor:
        """[N, nblk * LANES, C] tile-major -> [N, h, w, C] image layout (padding cropped)."""
        n, c = x.shape[0], x.shape[-1]
        x = x.reshape(n, self.hb, self.wb, BLOCK, BLOCK, c).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(n, self.hb * BLOCK, self.wb * BLOCK, c)[:, : self.h, : self.w]


# ----------------------------------------------------------------------------------------------------------
# ray / object intersections with broadcasting: o, d [S, K, 3] (or [S, 1, 3]); object parameters [S, 1]
# (centre [S, 1, 3]); t [S, K] = inf on a miss. Only hits entering the object at t > EPS count.
def _hit_sphere(o: torch.Tensor, d: torch.Tensor, c: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    ox, oy, oz = (o - c).unbind(-1)
    dx, dy, dz = d.unbind(-1)
    b = ox * dx + oy * dy + oz * dz
    disc = b * b - (ox * ox + oy * oy + oz * oz - r * r)
    t = -b - disc.clamp(min=0).sqrt()
    return torch.where((disc >= 0) & (t > EPS), t, torch.inf)


def _hit_cylinder(o: torch.Tensor, d: torch.Tensor, c: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Upright cylinder of radius r and half-height r centred at c."""
    ox, oy, oz = (o - c).unbind(-1)
    dx, dy, dz = d.unbind(-1)
    a = (dx * dx + dy * dy).clamp(min=1e-12)
    b = ox * dx + oy * dy
    disc = b * b - a * (ox * ox + oy * oy - r * r)
    ts = (-b - disc.clamp(min=0).sqrt()) / a
    t = torch.where((disc >= 0) & (ts > EPS) & ((oz + ts * dz).abs() <= r), ts, torch.inf)
    dzs = torch.where(dz.abs() > 1e-12, dz, torch.full_like(dz, 1e-12))
    for zc in (r, -r):  # caps
        tc = (zc - oz) / dzs
        qx, qy = ox + tc * dx, oy + tc * dy
        t = torch.where((tc > EPS) & (qx * qx + qy * qy <= r * r), torch.minimum(t, tc), t)
    return t


def _slab(o: torch.Tensor, d: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    inv = 1.0 / torch.where(d.abs() > 1e-12, d, torch.full_like(d, 1e-12))
    t1, t2 = (-h - o) * inv, (h - o) * inv
    return torch.minimum(t1, t2), torch.maximum(t1, t2)


def _hit_cube(
    o: torch.Tensor, d: torch.Tensor, c: torch.Tensor, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> torch.Tensor:
    """Box of half-size h centred at c, turned by theta about z (cos, sin given)."""
    ox, oy, oz = (o - c).unbind(-1)
    dx, dy, dz = d.unbind(-1)
    n1, f1 = _slab(cos * ox + sin * oy, cos * dx + sin * dy, h)  # local x
    n2, f2 = _slab(cos * oy - sin * ox, cos * dy - sin * dx, h)  # local y
    n3, f3 = _slab(oz, dz, h)
    tnear = torch.maximum(torch.maximum(n1, n2), n3)
    tfar = torch.minimum(torch.minimum(f1, f2), f3)
    return torch.where((tnear <= tfar) & (tnear > EPS), tnear, torch.inf)


def _seg_near(o: torch.Tensor, l: torch.Tensor, c: torch.Tensor, lim: torch.Tensor) -> torch.Tensor:
    """Does the segment o -> l pass within lim of c? o, l, c [..., 3] (broadcast), lim [...]."""
    sx, sy, sz = (l - o).unbind(-1)
    vx, vy, vz = (c - o).unbind(-1)
    s = ((vx * sx + vy * sy + vz * sz) / (sx * sx + sy * sy + sz * sz)).clamp(0, 1)
    ex, ey, ez = vx - s * sx, vy - s * sy, vz - s * sz
    return ex * ex + ey * ey + ez * ez <= lim * lim


# ----------------------------------------------------------------------------------------------------------
class _Batch:
    """Object tables of B scenes padded to M objects, flattened to B * M rows (row = b * M + m)."""

    def __init__(self, scenes: list[dict], m: int):
        b = len(scenes)
        self.b, self.m = b, m
        f32 = np.float32
        center = np.zeros((b, m, 3), f32)
        r = np.zeros((b, m), f32)
        shape = np.zeros((b, m), np.int64)
        theta = np.zeros((b, m), np.float64)
        color = np.zeros((b, m, 3), f32)
        metal = np.zeros((b, m), bool)
        for i, s in enumerate(scenes):
            o = s["objects"]
            k = len(o["x"])
            center[i, :k] = np.stack([o["x"], o["y"], o["z"]], -1)
            r[i, :k] = o["r"]
            shape[i, :k] = o["shape"]
            theta[i, :k] = o["rotation"]  # CLEVR quirk: the value in degrees is used as radians
            color[i, :k] = cs.COLORS[o["color"] - 1]
            metal[i, :k] = o["material"] == 2
        self.center = torch.from_numpy(center.reshape(-1, 3))  # [B * M, 3]
        self.r = torch.from_numpy(r.reshape(-1))  # [B * M]
        self.shape = torch.from_numpy(shape.reshape(-1))
        self.cos = torch.from_numpy(np.cos(theta).astype(f32).reshape(-1))
        self.sin = torch.from_numpy(np.sin(theta).astype(f32).reshape(-1))
        self.color = torch.from_numpy(color.reshape(-1, 3))
        self.metal = torch.from_numpy(metal.reshape(-1))
        self.camera = torch.from_numpy(np.stack([s["camera"] for s in scenes]).astype(f32))  # [B, 3]
        self.lights = torch.from_numpy(np.stack([s["lights"] for s in scenes]).astype(f32))  # [B, L, 3]
        self.camera64 = np.stack([s["camera"] for s in scenes])
        ext_xy = torch.where(self.shape == 1, self.r * (self.cos.abs() + self.sin.abs()), self.r)
        self.half = torch.stack([ext_xy, ext_xy, self.r], -1)  # [B * M, 3] world AABB half extents

    def corners(self) -> torch.Tensor:
        """World AABB corners [B, M, 8, 3]."""
        s = torch.tensor([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)], dtype=torch.float32)
        return (self.center[:, None, :] + s * self.half[:, None, :]).reshape(self.b, self.m, 8, 3)

    def hit(self, obj: torch.Tensor, o: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """Ray parameters t [S, K] of rays o, d [S, K or 1, 3] against objects ``obj`` [S] (table rows)."""
        k = max(o.shape[1], d.shape[1])
        t = torch.full((len(obj), k), torch.inf)
        shape = self.shape[obj]
        for code in (1, 2, 3):
            sel = torch.nonzero(shape == code).squeeze(1)
            if sel.numel() == 0:
                continue
            ob = obj[sel]
            c, r = self.center[ob][:, None, :], self.r[ob][:, None]
            if code == 1:
                t[sel] = _hit_cube(o[sel], d[sel], c, r, self.cos[ob][:, None], self.sin[ob][:, None])
            elif code == 2:
                t[sel] = _hit_sphere(o[sel], d[sel], c, r)
            else:
                t[sel] = _hit_cylinder(o[sel], d[sel], c, r)
        return t


def _tile_rects(points: torch.Tensor, camera: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """Tile rectangles [..., 4] (x0, x1, y0, y1 in tiles; x1, y1 exclusive) covering the screen projection
    of points [B, ..., K, 3] (the whole image if a point is behind the camera)."""
    h, w = size
    shp = points.shape
    px, py, depth = project(points.reshape(shp[0], -1, 3).double(), camera, size)
    px, py, depth = (a.reshape(shp[:-1]) for a in (px, py, depth))
    behind = (depth <= 1e-3).any(-1)
    x0 = px.amin(-1).floor().clamp(0, w)
    x1 = (px.amax(-1).floor() + 1).clamp(0, w)
    y0 = py.amin(-1).floor().clamp(0, h)
    y1 = (py.amax(-1).floor() + 1).clamp(0, h)
    x0, y0 = (x0 / BLOCK).floor(), (y0 / BLOCK).floor()
    x1, y1 = (x1 / BLOCK).ceil(), (y1 / BLOCK).ceil()
    rect = torch.stack([x0, x1, y0, y1], -1).long()
    full = torch.tensor([0, -(-w // BLOCK), 0, -(-h // BLOCK)])
    return torch.where(behind[..., None], full, rect)


def _pairs(rect: torch.Tensor, valid: torch.Tensor, wb: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Enumerate the tiles of rectangles rect [R, 4] (where valid [R]): (rect index [S], tile index [S])."""
    wd = (rect[:, 1] - rect[:, 0]).clamp(min=0)
    ht = (rect[:, 3] - rect[:, 2]).clamp(min=0)
    cnt = torch.where(valid, wd * ht, 0)
    rid = torch.repeat_interleave(torch.arange(len(rect)), cnt)  # [S]
    start = torch.cumsum(cnt, 0) - cnt
    off = torch.arange(len(rid)) - start[rid]
    wr = wd[rid]
    ty = torch.div(off, wr, rounding_mode="floor")
    tx = off - ty * wr
    return rid, (rect[rid, 2] + ty) * wb + rect[rid, 0] + tx


def _primary(batch: _Batch, grid: _Grid) -> tuple[torch.Tensor, torch.Tensor]:
    """Primary rays: depth along the ray [B, P] (ground or object; inf = sky), labels [B, P] (0 = ground)."""
    b, m, p = batch.b, batch.m, grid.p
    dz = grid.dirs[None, :, 2]  # [1, P]
    oz = batch.camera[:, 2:3]  # [B, 1]
    depth = torch.where(dz < -1e-6, -oz / dz.clamp(max=-1e-6), torch.inf).reshape(-1)  # [B * P] ground
    label = torch.zeros(b * p, dtype=torch.int64)
    rect = _tile_rects(batch.corners(), batch.camera64, (grid.h, grid.w)).reshape(b * m, 4)
    obj, tile = _pairs(rect, batch.shape > 0, grid.wb)  # obj = b * M + m
    if obj.numel() == 0:
        return depth.reshape(b, p), label.reshape(b, p)
    bi = torch.div(obj, m, rounding_mode="floor")
    d = grid.dirs.reshape(grid.nblk, LANES, 3)[tile]  # [S, LANES, 3]
    t = batch.hit(obj, batch.camera[bi][:, None, :], d)  # [S, LANES]
    flat = ((bi * grid.nblk + tile) * LANES)[:, None] + torch.arange(LANES)  # [S, LANES]
    depth.scatter_reduce_(0, flat.reshape(-1), t.reshape(-1), reduce="amin")
    win = torch.isfinite(t) & (t == depth[flat])
    label[flat[win]] = (obj - bi * m + 1)[:, None].expand_as(t)[win]
    return depth.reshape(b, p), label.reshape(b, p)


def _normals(batch: _Batch, obj: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Unit surface normals [Q, 3] of objects ``obj`` [Q] (table rows) at surface points [Q, 3]."""
    qx, qy, qz = (points - batch.center[obj]).unbind(-1)
    r = batch.r[obj]
    shape = batch.shape[obj]
    cos, sin = batch.cos[obj], batch.sin[obj]
    # cube: the local axis with the largest |q| (all faces are at distance h)
    lx, ly = cos * qx + sin * qy, cos * qy - sin * qx
    ax, ay, az = lx.abs(), ly.abs(), qz.abs()
    use_x = (ax >= ay) & (ax >= az)
    use_y = ~use_x & (ay >= az)
    nlx = torch.where(use_x, torch.sign(lx), 0.0)
    nly = torch.where(use_y, torch.sign(ly), 0.0)
    nlz = torch.where(use_x | use_y, 0.0, torch.sign(qz))
    cube = torch.stack([cos * nlx - sin * nly, sin * nlx + cos * nly, nlz], -1)
    cap = az >= r * (1 - 1e-3)  # cylinder: cap or side
    cyl = torch.stack([torch.where(cap, 0.0, qx), torch.where(cap, 0.0, qy), torch.where(cap, torch.sign(qz), 0.0)], -1)
    sphere = torch.stack([qx, qy, qz], -1)
    n = torch.where((shape == 1)[:, None], cube, torch.where((shape == 2)[:, None], sphere, cyl))
    return F.normalize(n, dim=-1)


def _shadows(batch: _Batch, grid: _Grid, label: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
    """Shadow flags [L, B * P] (True = light blocked) of shadow rays leaving ``origin`` [B * P, 3].

    Culling, coarse to fine: tiles inside the screen rectangle of an object's shadow volume (the object's
    AABB and its projection from the light onto the ground); tile bounding sphere vs object bounding
    sphere; pixel vs object bounding sphere; then the exact intersection.
    """
    b, m, p = batch.b, batch.m, grid.p
    nl = batch.lights.shape[1]
    shadow = torch.zeros(nl * b * p, dtype=torch.bool)
    corners = batch.corners()  # [B, M, 8, 3]
    lights = batch.lights  # [B, L, 3]
    lz = lights[:, None, :, None, 2:3]  # [B, 1, L, 1, 1]
    cz = corners[:, :, None, :, 2:3]  # [B, M, 1, 8, 1]
    lpos = lights[:, None, :, None, :]
    k = lz / (lz - cz).clamp(min=1e-3)  # project corners from the light onto z = 0
    ground = lpos + (corners[:, :, None] - lpos) * k  # [B, M, L, 8, 3]
    hull = torch.cat([corners[:, :, None].expand(-1, -1, nl, -1, -1), ground], 3)  # [B, M, L, 16, 3]
    rect = _tile_rects(hull, batch.camera64, (grid.h, grid.w))  # [B, M, L, 4]
    too_low = (lz - cz <= 1e-2).any(-2).any(-1)  # [B, M, L] light not above the object: no bound
    rect = torch.where(too_low[..., None], torch.tensor([0, grid.wb, 0, grid.hb]), rect).reshape(-1, 4)
    valid = (batch.shape > 0)[:, None].expand(b * m, nl).reshape(-1)
    rid, tile = _pairs(rect, valid, grid.wb)  # rid = (b * M + m) * L + l
    if rid.numel() == 0:
        return shadow.reshape(nl, b * p)
    # Per-rect tables.
    l_r = lights[:, None].expand(b, m, nl, 3).reshape(-1, 3)  # [R, 3]
    c_r = batch.center[:, None].expand(b * m, nl, 3).reshape(-1, 3)
    rad_r = (batch.r * _BOUND[batch.shape])[:, None].expand(b * m, nl).reshape(-1)
    # Tile bounding spheres.
    org = origin.reshape(b * grid.nblk, LANES, 3)
    hi, lo = org.amax(1), org.amin(1)  # [B * nblk, 3] tile bounding boxes
    tc = 0.5 * (hi + lo)  # tile bounding sphere: box centre and half-diagonal
    trad = 0.5 * (hi - lo).norm(dim=-1)  # [B * nblk]
    gt = torch.div(rid, m * nl, rounding_mode="floor") * grid.nblk + tile  # global tile index
    sel = torch.nonzero(_seg_near(tc[gt], l_r[rid], c_r[rid], rad_r[rid] + trad[gt])).squeeze(1)
    rid, gt = rid[sel], gt[sel]
    obj = torch.div(rid, nl, rounding_mode="floor")  # table row b * M + m
    o = org[gt]  # [S, LANES, 3]
    own = obj - torch.div(obj, m, rounding_mode="floor") * m + 1  # the object's label
    keep = (label.reshape(-1, LANES)[gt] != own[:, None]) & _seg_near(
        o, l_r[rid][:, None], c_r[rid][:, None], rad_r[rid][:, None]
    )  # [S, LANES]; convex objects do not shadow themselves (where n.l < 0 it is unlit anyway)
    idx = torch.nonzero(keep.reshape(-1)).squeeze(1)
    si, lane = torch.div(idx, LANES, rounding_mode="floor"), idx % LANES
    o = o.reshape(-1, 3)[idx]  # [T, 3]
    rid = rid[si]
    seg = l_r[rid] - o
    dist = seg.norm(dim=-1)
    t = batch.hit(obj[si], o[:, None], (seg / dist[:, None])[:, None])[:, 0]
    hit = t < dist
    shadow[((rid % nl) * (b * p) + gt[si] * LANES + lane)[hit]] = True
    return shadow.reshape(nl, b * p)


def _shade(batch: _Batch, grid: _Grid, depth: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """RGB [B, P, 3] (tile-major; not yet clamped to [0, 1]) from the primary hits (depth, label [B, P])."""
    b, p = label.shape
    nl = batch.lights.shape[1]
    light_rgb = torch.from_numpy(LIGHT_RGB)  # [L, 3]
    sky = ~torch.isfinite(depth)  # [B, P] rays above the horizon (none with CLEVR's camera)
    depth = torch.where(sky, 0.0, depth)
    dirs = grid.dirs
    # Ground (all pixels first; object pixels are overwritten below): points on z = 0, normal +z.
    gx = batch.camera[:, 0:1] + depth * dirs[None, :, 0]  # [B, P]
    gy = batch.camera[:, 1:2] + depth * dirs[None, :, 1]
    origin = torch.stack([gx, gy, torch.full_like(gx, 1e-3)], -1).reshape(b * p, 3)  # shadow ray origins
    # Object pixels: hit points and normals.
    flat_obj = torch.nonzero(label.reshape(-1) > 0).squeeze(1)  # [Q]
    bi = torch.div(flat_obj, p, rounding_mode="floor")
    obj = bi * batch.m + label.reshape(-1)[flat_obj] - 1  # table rows
    d_obj = dirs[flat_obj - bi * p]  # [Q, 3]
    pts = batch.camera[bi] + depth.reshape(-1)[flat_obj, None] * d_obj  # [Q, 3]
    nrm = _normals(batch, obj, pts)
    origin[flat_obj] = pts + 1e-3 * nrm
    lit = ~_shadows(batch, grid, label, origin)  # [L, B * P]

    chans = [torch.full((b * p,), AMBIENT * GROUND_ALBEDO) for _ in range(3)]  # ground R, G, B [B * P]
    for li in range(nl):
        lx = batch.lights[:, li, 0:1] - gx  # [B, P]
        ly = batch.lights[:, li, 1:2] - gy
        lz = batch.lights[:, li, 2:3]
        ndl = (lz * torch.rsqrt(lx * lx + ly * ly + lz * lz)).reshape(-1) * lit[li]  # [B * P]
        for ci in range(3):
            chans[ci].add_(ndl, alpha=float(GROUND_ALBEDO * LIGHT_RGB[li, ci]))
    rgb = torch.stack(chans, -1)  # [B * P, 3]

    albedo = batch.color[obj]  # [Q, 3]
    diffuse = torch.full_like(pts, AMBIENT)
    spec = torch.zeros_like(pts)
    lit_obj = lit[:, flat_obj]  # [L, Q]
    for li in range(nl):
        to_l = F.normalize(batch.lights[bi, li] - pts, dim=-1)  # [Q, 3]
        ndl = (nrm * to_l).sum(-1).clamp(min=0) * lit_obj[li]
        diffuse += ndl[:, None] * light_rgb[li]
        half = F.normalize(to_l - d_obj, dim=-1)
        ndh = (nrm * half).sum(-1).clamp(min=0)
        spec += (ndh.pow(SHININESS) * (ndl > 0))[:, None] * light_rgb[li]
    # Metal: weak diffuse, tinted reflection of a ground / sky environment, white-ish highlights.
    refl_z = d_obj[:, 2] - 2 * (d_obj * nrm).sum(-1) * nrm[:, 2]  # [Q]
    env = torch.where(refl_z < 0, GROUND_ALBEDO * 0.8, 0.55 + 0.35 * refl_z.clamp(0, 1))[:, None]
    metal_rgb = albedo * (METAL_DIFFUSE * diffuse + METAL_REFLECT * env) + 1.2 * spec
    rgb[flat_obj] = torch.where(batch.metal[obj][:, None], metal_rgb, albedo * diffuse)
    rgb[sky.reshape(-1)] = SKY
    return rgb.reshape(b, p, 3)  # not clamped yet


# ----------------------------------------------------------------------------------------------------------
def _min_pixels(size: tuple[int, int]) -> float:
    return cs.MIN_PIXELS_PER_OBJECT * size[0] * size[1] / cs.CLEVR_PIXELS


def _pixel_counts(label: torch.Tensor, m: int) -> torch.Tensor:
    """Visible pixels per object [B, M] from label maps [B, ...]."""
    b = label.shape[0]
    idx = label.reshape(b, -1) + (m + 1) * torch.arange(b)[:, None]
    return torch.bincount(idx.reshape(-1), minlength=b * (m + 1)).reshape(b, m + 1)[:, 1:]


def _render_batch(
    indices: list[int], seed: int, variant: str, grid: _Grid
) -> tuple[list[dict], torch.Tensor, torch.Tensor]:
    """Sample (with the visibility rule) and render scenes ``indices``.

    Returns the scenes, rgb [B, h, w, 3] in [0, 1] and labels [B, h, w] (int64).
    """
    cfg = VARIANTS[variant]
    m = cfg["max_objects"]
    scenes = []
    for i in indices:
        rng = np.random.default_rng([seed, _TAG, cfg["id"], i])
        camera, lights = cs.sample_view(rng)
        num = int(rng.integers(cfg["min_objects"], cfg["max_objects"] + 1))
        objects = cs.sample_objects(rng, num)
        scenes.append({"rng": rng, "camera": camera, "lights": lights, "num": num, "objects": objects})
    b = len(indices)
    depth = torch.zeros(b, grid.p)
    label = torch.zeros(b, grid.p, dtype=torch.int64)
    pending = list(range(b))
    thresh = _min_pixels((grid.h, grid.w))
    for _ in range(MAX_VISIBILITY_ROUNDS):
        sub = _Batch([scenes[j] for j in pending], m)
        d, lab = _primary(sub, grid)
        counts = _pixel_counts(grid.to_image(lab[..., None]), m)  # [b', M], padding pixels excluded
        present = torch.arange(m)[None, :] < torch.tensor([scenes[j]["num"] for j in pending])[:, None]
        ok = ((counts >= thresh) | ~present).all(1)
        idx = torch.tensor(pending)
        depth[idx[ok]], label[idx[ok]] = d[ok], lab[ok]
        pending = [j for j, good in zip(pending, ok.tolist(), strict=True) if not good]
        if not pending:
            break
        for j in pending:  # CLEVR: re-place all objects (same count, camera and lights)
            scenes[j]["objects"] = cs.sample_objects(scenes[j]["rng"], scenes[j]["num"])
    if pending:
        raise RuntimeError(f"CLEVR scenes {[indices[j] for j in pending]} failed the visibility rule")
    rgb = _shade(_Batch(scenes, m), grid, depth, label)
    return scenes, grid.to_image(rgb.clamp_(0, 1)), grid.to_image(label[..., None])[..., 0]


def render_scenes(scenes: list[dict], image_size: tuple[int, int] = IMAGE_SIZE) -> dict[str, np.ndarray]:
    """Render given scenes (no sampling, no visibility rule): each a dict with ``camera`` [3], ``lights`` [3, 3]
    and ``objects`` (arrays x, y, z, r, rotation and 1-based shape, size, material, color codes, as
    ``clevr_scene.sample_objects`` returns them). Returns image uint8 [n, H, W, 3] and mask uint8 [n, H, W]."""
    h, w = int(image_size[0]), int(image_size[1])
    grid = _Grid(h, w)
    images, masks = [], []
    for lo in range(0, len(scenes), BATCH):
        part = scenes[lo : lo + BATCH]
        m = max(1, max(len(s["objects"]["x"]) for s in part))
        batch = _Batch(part, m)
        depth, label = _primary(batch, grid)
        rgb = grid.to_image(_shade(batch, grid, depth, label).clamp_(0, 1))
        images.append((rgb * 255.0 + 0.5).to(torch.uint8).numpy())
        masks.append(grid.to_image(label[..., None])[..., 0].to(torch.uint8).numpy())
    if not scenes:
        return {"image": np.zeros((0, h, w, 3), np.uint8), "mask": np.zeros((0, h, w), np.uint8)}
    return {"image": np.concatenate(images), "mask": np.concatenate(masks)}


def generate(
    seed: int,
    start: int,
    count: int,
    variant: str = DEFAULT_VARIANT,
    image_size: tuple[int, int] = IMAGE_SIZE,
    greyscale: bool = False,
) -> dict[str, np.ndarray]:
    """CLEVR-like scenes ``start .. start + count - 1`` of stream ``seed``.

    Args:
        variant: "clevr6" (3-6 objects), "clevr10" (3-10 objects) or "clevr3" (1-3 objects; not a paper set).
        image_size: (H, W) of the rendered image, default (240, 320). The visibility rule (200 pixels at
            480x320) is scaled by pixel area, so the scenes depend on the size.
        greyscale: replace the image by its luminance (0.299 R + 0.587 G + 0.114 B) in all 3 channels.

    Returns (n = count, M = MAX_OBJECTS[variant]; object j is mask label j + 1; padding is 0):
        image uint8 [n, H, W, 3]; mask uint8 [n, H, W]; num_objects int64 [n]; visibility float32 [n, M];
        x, y, z (3d_coords), rotation (degrees) float32 [n, M]; pixel_coords float32 [n, M, 3]
        (round(px), round(py), depth at the rendered size); shape, size, material, color int64 [n, M]
        (1-based codes into clevr_scene.*_NAMES); color_rgb float32 [n, M, 3]; pixel_count int64 [n, M];
        camera float32 [n, 3]; lights float32 [n, 3, 3]. ``scene_json(out, i)`` gives CLEVR's JSON form.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown CLEVR variant {variant!r}; choose from {sorted(VARIANTS)}")
    if start < 0 or count < 0 or seed < 0:
        raise ValueError(f"seed, start and count must be >= 0, got {seed}, {start}, {count}")
    h, w = int(image_size[0]), int(image_size[1])
    size = (h, w)
    m = MAX_OBJECTS[variant]
    grid = _Grid(h, w)
    out: dict[str, np.ndarray] = {
        "image": np.zeros((count, h, w, 3), np.uint8),
        "mask": np.zeros((count, h, w), np.uint8),
        "num_objects": np.zeros(count, np.int64),
        "visibility": np.zeros((count, m), np.float32),
        "pixel_count": np.zeros((count, m), np.int64),
        "camera": np.zeros((count, 3), np.float32),
        "lights": np.zeros((count, 3, 3), np.float32),
        "pixel_coords": np.zeros((count, m, 3), np.float32),
        "color_rgb": np.zeros((count, m, 3), np.float32),
    }
    for key in ("x", "y", "z", "rotation"):
        out[key] = np.zeros((count, m), np.float32)
    for key in ("shape", "size", "material", "color"):
        out[key] = np.zeros((count, m), np.int64)
    for lo in range(0, count, BATCH):
        idx = list(range(start + lo, start + min(lo + BATCH, count)))
        scenes, img, label = _render_batch(idx, seed, variant, grid)  # [b, h, w, 3], [b, h, w]
        sl = slice(lo, lo + len(idx))
        if greyscale:
            img = (img @ torch.tensor([0.299, 0.587, 0.114]))[..., None].expand(-1, -1, -1, 3).clamp(0, 1)
        out["image"][sl] = (img * 255.0 + 0.5).to(torch.uint8).numpy()  # img in [0, 1]: round half up
        out["mask"][sl] = label.to(torch.uint8).numpy()
        out["pixel_count"][sl] = _pixel_counts(label, m).numpy()
        for j, s in enumerate(scenes):
            o, k, r = s["objects"], s["num"], lo + j
            out["num_objects"][r] = k
            out["camera"][r], out["lights"][r] = s["camera"], s["lights"]
            for key in ("x", "y", "z", "rotation", "shape", "size", "material", "color"):
                out[key][r, :k] = o[key]
            out["color_rgb"][r, :k] = cs.COLORS[o["color"] - 1]
            px, py, dep = project(np.stack([o["x"], o["y"], o["z"]], -1), s["camera"], size)
            out["pixel_coords"][r, :k] = np.stack([px.round().numpy(), py.round().numpy(), dep.numpy()], -1)
    out["visibility"] = (out["pixel_count"] > 0).astype(np.float32)
    return out


def scene_json(out: dict[str, np.ndarray], i: int, split: str = "train", image_index: int | None = None) -> dict:
    """Scene ``i`` of a ``generate`` output in CLEVR's scene-JSON schema (JSON-serialisable)."""
    k = int(out["num_objects"][i])
    objects = []
    for j in range(k):
        objects.append(
            {
                "shape": cs.SHAPE_NAMES[out["shape"][i, j] - 1],
                "size": cs.SIZE_NAMES[out["size"][i, j] - 1],
                "material": cs.MATERIAL_NAMES[out["material"][i, j] - 1],
                "color": cs.COLOR_NAMES[out["color"][i, j] - 1],
                "3d_coords": [float(out[a][i, j]) for a in ("x", "y", "z")],
                "rotation": float(out["rotation"][i, j]),
                "pixel_coords": [
                    int(out["pixel_coords"][i, j, 0]),
                    int(out["pixel_coords"][i, j, 1]),
                    float(out["pixel_coords"][i, j, 2]),
                ],
            }
        )
    index = i if image_index is None else image_index
    return {
        "split": split,
        "image_index": int(index),
        "image_filename": f"CLEVR_{split}_{index:06d}.png",
        "objects": objects,
        "directions": {name: [float(v) for v in vec] for name, vec in cs.DIRECTIONS.items()},
    }


def scenes_json(out: dict[str, np.ndarray], split: str = "train", start: int = 0) -> list[dict]:
    """All scenes of a ``generate`` output in CLEVR's scene-JSON schema (image_index = start + i)."""
    return [scene_json(out, i, split, start + i) for i in range(len(out["num_objects"]))]


# ----------------------------------------------------------------------------------------------------------
# preprocessing (reference code: crop rows 29:221, columns 64:256 of the 240x320 image, resize to 128x128)
CROP = (slice(29, 221), slice(64, 256))


def preprocess_clevr(image: np.ndarray | torch.Tensor, crop: bool = True, size: int = 128) -> torch.Tensor:
    """uint8 images [N, 240, 320, 3] -> float32 [N, 3, size, size] in [-1, 1] (crop, bilinear resize)."""
    x = torch.as_tensor(image)
    if crop:
        x = x[:, CROP[0], CROP[1]]
    x = x.permute(0, 3, 1, 2).float() / 127.5 - 1.0  # [N, 3, h, w]
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)


def preprocess_clevr_mask(mask: np.ndarray | torch.Tensor, crop: bool = True, size: int = 128) -> torch.Tensor:
    """Instance label maps [N, 240, 320] -> [N, size, size] (same crop, nearest resize; dtype kept)."""
    x = torch.as_tensor(mask)
    if crop:
        x = x[:, CROP[0], CROP[1]]
    y = F.interpolate(x[:, None].float(), size=(size, size), mode="nearest")
    return y[:, 0].to(x.dtype)
