"""Procedural CLEVR-like scenes rendered by a vectorised torch ray caster (no Blender).

Stands in for "CLEVR with masks" (DeepMind multi-object datasets; paper Section 4.1, CLEVR6 object
discovery) and CLEVR v1.0 scenes (Section 4.2, CLEVR10 set prediction). Scene sampling follows
clevr-dataset-gen (see ``clevr_scene``); this module renders the scenes and packs them into the common
generator contract, and holds the reference preprocessing (``preprocess_clevr``).

Renderer: pinhole camera (35 mm lens, 32 mm horizontal sensor) at CLEVR's jittered camera location looking
at the origin; an infinite grey ground plane z = 0; cubes (z-rotated boxes), spheres and upright
cylinders, intersected analytically. Three point lights (key / fill / back, jittered) with hard shadows
from shadow rays, plus ambient light. Rubber is Lambertian; metal is a weak Lambertian term plus Blinn-Phong
highlights and a tinted reflection of a simple environment (ground / sky, no inter-object reflections).
No anti-aliasing (one ray per pixel). Colours are computed directly in display space: a rubber surface
facing the key light shows roughly its CLEVR base colour.

Speed: rays are only tested against an object inside the object's projected screen rectangle (and, for
shadow rays, inside the projected rectangle of the object's shadow volume for that light): the renderer
builds flat lists of (pixel, object) pairs with ``repeat_interleave`` and reduces the hits with
``scatter_reduce``, so the work is proportional to the objects' screen area rather than pixels x objects.

Determinism: scene i of a stream is a pure function of (seed, i, variant, image size): it is sampled from
its own RNG ``np.random.default_rng([seed, 0xC1E5, variant_id, i])`` (which also feeds the visibility
re-sampling), so ``generate(seed, 100, 10)`` equals ``generate(seed, 0, 200)[100:110]``.
Note CLEVR's quirk: ``rotation`` is stored in degrees but Blender receives the same number as radians;
the renderer reproduces that (the box is turned by ``rotation`` radians).
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
}
DEFAULT_VARIANT = "clevr6"
MAX_OBJECTS = {name: v["max_objects"] for name, v in VARIANTS.items()}
BATCH = 32  # scenes rendered together
MAX_VISIBILITY_ROUNDS = 100

# Shading constants (display space).
AMBIENT = 0.22
LIGHT_RGB = np.array(
    [
        [1.0, 0.93, 0.82],  # key, warm (Kubric/CLEVR 0xffedd0)
        [0.76, 0.82, 1.0],  # fill, cool (0xc2d0ff)
        [1.0, 1.0, 1.0],  # back
    ],
    dtype=np.float32,
) * np.array([[0.85], [0.3], [0.3]], dtype=np.float32)
GROUND_ALBEDO = 0.62
METAL_DIFFUSE = 0.3
METAL_REFLECT = 0.75
SHININESS = 60.0
EPS = 1e-4
SHADOW_BLOCK = 4  # pixel tile size of the coarse shadow-ray culling

_TAG = 0xC1E5


# ----------------------------------------------------------------------------------------------------------
# camera
def _focal_px(width: int) -> float:
    return cs.FOCAL_LENGTH_MM / cs.SENSOR_WIDTH_MM * width


def _ray_dirs(h: int, w: int) -> torch.Tensor:
    """Unit world-space ray directions [H * W, 3] through the pixel centres (row-major)."""
    f = _focal_px(w)
    ys = (torch.arange(h, dtype=torch.float64) + 0.5 - h / 2) / f
    xs = (torch.arange(w, dtype=torch.float64) + 0.5 - w / 2) / f
    cam = torch.stack(
        [xs[None, :].expand(h, w), -ys[:, None].expand(h, w), -torch.ones(h, w, dtype=torch.float64)], -1
    ).reshape(-1, 3)  # [P, 3] in camera coordinates
    d = cam @ torch.from_numpy(cs.CAMERA_ROTATION)  # camera -> world (rotation rows are camera axes)
    return (d / d.norm(dim=-1, keepdim=True)).float()


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


# ----------------------------------------------------------------------------------------------------------
# ray / object intersections on flat lists of rays; o, d [T, 3], object parameters [T, ...]; t = inf on miss
def _hit_sphere(o: torch.Tensor, d: torch.Tensor, c: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    oc = o - c
    b = (oc * d).sum(-1)
    disc = b * b - ((oc * oc).sum(-1) - r * r)
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
    side = (disc >= 0) & (ts > EPS) & ((oz + ts * dz).abs() <= r)
    t = torch.where(side, ts, torch.inf)
    dzs = torch.where(dz.abs() > 1e-12, dz, torch.full_like(dz, 1e-12))
    for zc in (r, -r):  # caps
        tc = (zc - oz) / dzs
        qx, qy = ox + tc * dx, oy + tc * dy
        cap = (tc > EPS) & (qx * qx + qy * qy <= r * r)
        t = torch.minimum(t, torch.where(cap, tc, torch.inf))
    return t


def _hit_cube(
    o: torch.Tensor, d: torch.Tensor, c: torch.Tensor, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> torch.Tensor:
    """Box of half-size h centred at c, turned by theta about z (cos, sin given)."""
    ox, oy, oz = (o - c).unbind(-1)
    dx, dy, dz = d.unbind(-1)
    lo = torch.stack([cos * ox + sin * oy, -sin * ox + cos * oy, oz], -1)  # [T, 3] local origin
    ld = torch.stack([cos * dx + sin * dy, -sin * dx + cos * dy, dz], -1)
    ld = torch.where(ld.abs() > 1e-12, ld, torch.full_like(ld, 1e-12))
    inv = 1.0 / ld
    t1 = (-h[:, None] - lo) * inv
    t2 = (h[:, None] - lo) * inv
    tnear = torch.minimum(t1, t2).amax(-1)
    tfar = torch.maximum(t1, t2).amin(-1)
    return torch.where((tnear <= tfar) & (tnear > EPS), tnear, torch.inf)


# ----------------------------------------------------------------------------------------------------------
class _Batch:
    """Torch tensors of B scenes padded to M objects."""

    def __init__(self, scenes: list[dict], m: int):
        b = len(scenes)
        self.b, self.m = b, m
        f32 = np.float32
        center = np.zeros((b, m, 3), f32)
        r = np.zeros((b, m), f32)
        shape = np.zeros((b, m), np.int64)
        theta = np.zeros((b, m), f32)
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
        self.center = torch.from_numpy(center)
        self.r = torch.from_numpy(r)
        self.shape = torch.from_numpy(shape)
        self.cos = torch.from_numpy(np.cos(theta))
        self.sin = torch.from_numpy(np.sin(theta))
        self.color = torch.from_numpy(color)
        self.metal = torch.from_numpy(metal)
        self.camera = torch.from_numpy(np.stack([s["camera"] for s in scenes]).astype(f32))  # [B, 3]
        self.lights = torch.from_numpy(np.stack([s["lights"] for s in scenes]).astype(f32))  # [B, 3, 3]
        self.camera64 = np.stack([s["camera"] for s in scenes])
        # World AABB half extents [B, M, 3].
        ext_xy = torch.where(self.shape == 1, self.r * (self.cos.abs() + self.sin.abs()), self.r)
        self.half = torch.stack([ext_xy, ext_xy, self.r], -1)

    def corners(self) -> torch.Tensor:
        """AABB corners [B, M, 8, 3]."""
        s = torch.tensor([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)], dtype=torch.float32)
        return self.center[:, :, None, :] + s * self.half[:, :, None, :]


def _rects(points: torch.Tensor, camera: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """Screen rectangles [..., 4] (x0, x1, y0, y1; x1, y1 exclusive) bounding points [B, ..., K, 3]."""
    h, w = size
    shp = points.shape
    pts = points.reshape(shp[0], -1, 3).double()
    px, py, depth = project(pts, camera, size)
    px, py, depth = (a.reshape(shp[:-1]) for a in (px, py, depth))
    behind = (depth <= 1e-3).any(-1)
    x0 = px.amin(-1).floor().clamp(0, w)
    x1 = (px.amax(-1).floor() + 1).clamp(0, w)
    y0 = py.amin(-1).floor().clamp(0, h)
    y1 = (py.amax(-1).floor() + 1).clamp(0, h)
    rect = torch.stack([x0, x1, y0, y1], -1).long()
    full = torch.tensor([0, w, 0, h])
    return torch.where(behind[..., None], full, rect)


def _pairs(rect: torch.Tensor, valid: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Enumerate the pixels of rectangles rect [R, 4] (where valid [R]): (rect index [T], pixel index [T])."""
    wd = (rect[:, 1] - rect[:, 0]).clamp(min=0)
    ht = (rect[:, 3] - rect[:, 2]).clamp(min=0)
    cnt = torch.where(valid, wd * ht, 0)
    rid = torch.repeat_interleave(torch.arange(len(rect)), cnt)  # [T]
    start = torch.cumsum(cnt, 0) - cnt
    off = torch.arange(len(rid)) - start[rid]
    wr = wd[rid]
    px = rect[rid, 0] + off % wr
    py = rect[rid, 2] + torch.div(off, wr, rounding_mode="floor")
    return rid, py * width + px


def _hit_objects(
    batch: _Batch, bidx: torch.Tensor, midx: torch.Tensor, o: torch.Tensor, d: torch.Tensor
) -> torch.Tensor:
    """Ray parameters [T] of rays o, d [T, 3] against object (bidx, midx) [T] (any shape)."""
    t = torch.full((len(bidx),), torch.inf)
    shape = batch.shape[bidx, midx]
    for code in (1, 2, 3):
        sel = torch.nonzero(shape == code).squeeze(1)
        if sel.numel() == 0:
            continue
        bs, ms = bidx[sel], midx[sel]
        c, r = batch.center[bs, ms], batch.r[bs, ms]
        if code == 1:
            t[sel] = _hit_cube(o[sel], d[sel], c, r, batch.cos[bs, ms], batch.sin[bs, ms])
        elif code == 2:
            t[sel] = _hit_sphere(o[sel], d[sel], c, r)
        else:
            t[sel] = _hit_cylinder(o[sel], d[sel], c, r)
    return t


def _primary(batch: _Batch, dirs: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth along the ray [B, P] (ground or object) and instance labels [B, P] (int64, 0 = ground)."""
    h, w = size
    b, m, p = batch.b, batch.m, h * w
    oz = batch.camera[:, 2:3]  # [B, 1]
    dz = dirs[None, :, 2]  # [1, P]
    depth = torch.where(dz < -1e-6, -oz / dz.clamp(max=-1e-6), torch.inf).contiguous()  # [B, P] ground
    label = torch.zeros(b, p, dtype=torch.int64)
    rect = _rects(batch.corners(), batch.camera64, size).reshape(b * m, 4)
    valid = (batch.shape > 0).reshape(-1)
    rid, pix = _pairs(rect, valid, w)
    if rid.numel() == 0:
        return depth, label
    bidx, midx = torch.div(rid, m, rounding_mode="floor"), rid % m
    t = _hit_objects(batch, bidx, midx, batch.camera[bidx], dirs[pix])
    flat = bidx * p + pix
    depth = depth.reshape(-1)
    depth.scatter_reduce_(0, flat, t, reduce="amin")
    win = torch.isfinite(t) & (t == depth[flat])
    label.view(-1)[flat[win]] = midx[win] + 1
    return depth.reshape(b, p), label


def _normals(batch: _Batch, bi: torch.Tensor, mi: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Unit surface normals [Q, 3] of objects (bi, mi) [Q] at surface points [Q, 3]."""
    q = points - batch.center[bi, mi]  # [Q, 3]
    r = batch.r[bi, mi]
    shape = batch.shape[bi, mi]
    cos, sin = batch.cos[bi, mi], batch.sin[bi, mi]
    # cube: the local axis with the largest |q| (all faces are at distance h)
    lq = torch.stack([cos * q[:, 0] + sin * q[:, 1], -sin * q[:, 0] + cos * q[:, 1], q[:, 2]], -1)
    ax = lq.abs().argmax(-1)
    ln = F.one_hot(ax, 3).float() * torch.sign(lq.gather(1, ax[:, None]))
    cube = torch.stack([cos * ln[:, 0] - sin * ln[:, 1], sin * ln[:, 0] + cos * ln[:, 1], ln[:, 2]], -1)
    on_cap = q[:, 2].abs() >= r * (1 - 1e-3)
    cyl = torch.where(on_cap[:, None], torch.zeros_like(q), q)
    cyl[:, 2] = torch.where(on_cap, torch.sign(q[:, 2]), 0.0)
    n = torch.where((shape == 1)[:, None], cube, torch.where((shape == 2)[:, None], q, cyl))
    return F.normalize(n, dim=-1)


_BOUND = torch.tensor([0.0, 3.0**0.5, 1.0, 2.0**0.5])  # bounding-sphere radius / r, by shape code


def _shadows(
    batch: _Batch, label: torch.Tensor, origin: torch.Tensor, size: tuple[int, int], block: int | None = None
) -> torch.Tensor:
    """Shadow flags [B, L, P] (True = light blocked) from shadow rays leaving ``origin`` [B * P, 3].

    Culling, coarse to fine: only pixels inside the screen rectangle of an object's shadow volume (the
    object's AABB and its projection from the light onto the ground) are considered for that object;
    blocks of ``block`` x ``block`` pixels, bounded by a sphere around their points, are tested against the
    object's bounding sphere; the pixels of surviving blocks get the exact shadow-ray intersection.
    """
    h, w = size
    block = SHADOW_BLOCK if block is None else block
    b, m, p = batch.b, batch.m, h * w
    nl = batch.lights.shape[1]
    shadow = torch.zeros(b * nl * p, dtype=torch.bool)
    corners = batch.corners()  # [B, M, 8, 3]
    lights = batch.lights  # [B, L, 3]
    lz = lights[:, None, :, None, 2:3]  # [B, 1, L, 1, 1]
    cz = corners[:, :, None, :, 2:3]  # [B, M, 1, 8, 1]
    lpos = lights[:, None, :, None, :]
    k = lz / (lz - cz).clamp(min=1e-3)  # project corners from the light onto z = 0
    ground = lpos + (corners[:, :, None] - lpos) * k  # [B, M, L, 8, 3]
    hull = torch.cat([corners[:, :, None].expand(-1, -1, nl, -1, -1), ground], 3)  # [B, M, L, 16, 3]
    rect = _rects(hull, batch.camera64, size)  # [B, M, L, 4] in pixels
    too_low = (lz - cz <= 1e-2).any(-2).any(-1)  # [B, M, L] light not above the object: no bound
    rect = torch.where(too_low[..., None], torch.tensor([0, w, 0, h]), rect).reshape(-1, 4)
    # Blocks: bounding sphere (centre, radius) of the origins of each block x block pixel tile.
    hb, wb = -(-h // block), -(-w // block)
    org = origin.reshape(b, h, w, 3)
    org = F.pad(org.permute(0, 3, 1, 2), (0, wb * block - w, 0, hb * block - h), mode="replicate")
    org = org.reshape(b, 3, hb, block, wb, block)
    bc = org.mean(dim=(3, 5))  # [B, 3, hb, wb]
    brad = (org - bc[:, :, :, None, :, None]).norm(dim=1).amax(dim=(2, 4))  # [B, hb, wb]
    bc = bc.permute(0, 2, 3, 1).reshape(-1, 3)  # [B * hb * wb, 3]
    brad = brad.reshape(-1)
    brect = torch.stack(
        [rect[:, 0] // block, -(-rect[:, 1] // block), rect[:, 2] // block, -(-rect[:, 3] // block)], -1
    )
    valid = (batch.shape > 0)[:, :, None].expand(b, m, nl).reshape(-1)
    rid, blk = _pairs(brect, valid, wb)  # rect index = (b * M + m) * L + l; block index in the image
    if rid.numel() == 0:
        return shadow.reshape(b, nl, p)
    # Per-rect tables: light position, object bounding sphere.
    l_r = lights[:, None].expand(b, m, nl, 3).reshape(-1, 3)  # [R, 3]
    c_r = batch.center[:, :, None].expand(b, m, nl, 3).reshape(-1, 3)
    rad_r = (batch.r * _BOUND[batch.shape])[:, :, None].expand(b, m, nl).reshape(-1)
    bidx = torch.div(rid, m * nl, rounding_mode="floor")

    def near(o: torch.Tensor, extra: torch.Tensor | float, rr: torch.Tensor) -> torch.Tensor:
        """Does the segment o -> light pass within (bounding radius + extra) of the object centre?"""
        seg = l_r[rr] - o
        v = c_r[rr] - o
        s = ((v * seg).sum(-1) / (seg * seg).sum(-1)).clamp(0, 1)
        lim = rad_r[rr] + extra
        return ((v - s[:, None] * seg) ** 2).sum(-1) <= lim * lim

    gb = bidx * (hb * wb) + blk
    sel = torch.nonzero(near(bc[gb], brad[gb], rid)).squeeze(1)
    rid, blk, bidx = rid[sel], blk[sel], bidx[sel]
    # Expand surviving blocks into their pixels.
    by, bx = torch.div(blk, wb, rounding_mode="floor"), blk % wb
    dy, dx = torch.meshgrid(torch.arange(block), torch.arange(block), indexing="ij")
    py = (by * block)[:, None] + dy.reshape(1, -1)  # [T, block^2]
    px = (bx * block)[:, None] + dx.reshape(1, -1)
    inside = (py < h) & (px < w)
    pix = (py * w + px)[inside]
    rid = rid[:, None].expand_as(py)[inside]
    bidx = bidx[:, None].expand_as(py)[inside]
    flat = bidx * p + pix
    midx = torch.div(rid, nl, rounding_mode="floor") % m
    o = origin[flat]  # [T, 3]
    # Convex objects do not shadow themselves (where n.l < 0 the point is unlit anyway).
    keep = (label.view(-1)[flat] != midx + 1) & near(o, 0.0, rid)
    sel = torch.nonzero(keep).squeeze(1)
    rid, bidx, midx, flat, o = rid[sel], bidx[sel], midx[sel], flat[sel], o[sel]
    seg = l_r[rid] - o
    dist = seg.norm(dim=-1)
    t = _hit_objects(batch, bidx, midx, o, seg / dist[:, None])
    hit = t < dist
    li = rid % nl
    shadow[((bidx * nl + li) * p + flat - bidx * p)[hit]] = True
    return shadow.reshape(b, nl, p)


def _shade(
    batch: _Batch, dirs: torch.Tensor, depth: torch.Tensor, label: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """RGB in [0, 1], [B, P, 3] from the primary hits (depth, label [B, P])."""
    b, p = label.shape
    nl = batch.lights.shape[1]
    light_rgb = torch.from_numpy(LIGHT_RGB)  # [L, 3]
    # Ground (all pixels first; object pixels are overwritten below): points on z = 0, normal +z.
    gx = batch.camera[:, 0:1] + depth * dirs[None, :, 0]  # [B, P]
    gy = batch.camera[:, 1:2] + depth * dirs[None, :, 1]
    origin = torch.stack([gx, gy, torch.full_like(gx, 1e-3)], -1).reshape(b * p, 3)  # shadow ray origins
    # Object pixels: hit points, normals.
    flat_obj = torch.nonzero(label.reshape(-1) > 0).squeeze(1)  # [Q]
    bi = torch.div(flat_obj, p, rounding_mode="floor")
    mi = label.reshape(-1)[flat_obj] - 1
    pix = flat_obj - bi * p
    d_obj = dirs[pix]  # [Q, 3]
    pts = batch.camera[bi] + depth.reshape(-1)[flat_obj, None] * d_obj  # [Q, 3]
    nrm = _normals(batch, bi, mi, pts)
    origin[flat_obj] = pts + 1e-3 * nrm
    shadow = _shadows(batch, label, origin, size)  # [B, L, P]

    ground = torch.full((b, p, 3), AMBIENT)
    for li in range(nl):
        lx = batch.lights[:, li, 0:1] - gx  # [B, P]
        ly = batch.lights[:, li, 1:2] - gy
        lz = batch.lights[:, li, 2:3]
        ndl = lz * torch.rsqrt(lx * lx + ly * ly + lz * lz) * (~shadow[:, li])  # [B, P]
        ground += ndl[..., None] * light_rgb[li]
    rgb = (GROUND_ALBEDO * ground).reshape(b * p, 3)

    albedo = batch.color[bi, mi]  # [Q, 3]
    metal = batch.metal[bi, mi]  # [Q]
    diffuse = torch.full_like(pts, AMBIENT)
    spec = torch.zeros_like(pts)
    lit_all = ~shadow.permute(0, 2, 1).reshape(b * p, nl)[flat_obj]  # [Q, L]
    for li in range(nl):
        to_l = F.normalize(batch.lights[bi, li] - pts, dim=-1)  # [Q, 3]
        ndl = (nrm * to_l).sum(-1).clamp(min=0) * lit_all[:, li]
        diffuse += ndl[:, None] * light_rgb[li]
        half = F.normalize(to_l - d_obj, dim=-1)
        ndh = (nrm * half).sum(-1).clamp(min=0)
        spec += (ndh.pow(SHININESS) * (ndl > 0))[:, None] * light_rgb[li]
    obj = albedo * diffuse
    # Metal: weak diffuse, tinted reflection of a ground / sky environment, white-ish highlights.
    refl_z = d_obj[:, 2] - 2 * (d_obj * nrm).sum(-1) * nrm[:, 2]  # [Q]
    env = torch.where(refl_z < 0, GROUND_ALBEDO * 0.8, 0.55 + 0.35 * refl_z.clamp(0, 1))[:, None]
    metal_rgb = albedo * (METAL_DIFFUSE * diffuse + METAL_REFLECT * env) + 1.2 * spec
    rgb[flat_obj] = torch.where(metal[:, None], metal_rgb, obj)
    return rgb.reshape(b, p, 3).clamp(0, 1)

# ----------------------------------------------------------------------------------------------------------
def _min_pixels(size: tuple[int, int]) -> float:
    return cs.MIN_PIXELS_PER_OBJECT * size[0] * size[1] / cs.CLEVR_PIXELS


def _pixel_counts(label: torch.Tensor, m: int) -> torch.Tensor:
    """Visible pixels per object [B, M] from labels [B, P]."""
    b = label.shape[0]
    idx = label + (m + 1) * torch.arange(b)[:, None]
    return torch.bincount(idx.reshape(-1), minlength=b * (m + 1)).reshape(b, m + 1)[:, 1:]


def _render_batch(
    indices: list[int], seed: int, variant: str, size: tuple[int, int], dirs: torch.Tensor
) -> tuple[list[dict], torch.Tensor, torch.Tensor]:
    """Sample (with the visibility rule) and render scenes ``indices``: scenes, rgb [B, P, 3], labels [B, P]."""
    cfg = VARIANTS[variant]
    m = cfg["max_objects"]
    scenes = []
    for i in indices:
        rng = np.random.default_rng([seed, _TAG, cfg["id"], i])
        camera, lights = cs.sample_view(rng)
        num = int(rng.integers(cfg["min_objects"], cfg["max_objects"] + 1))
        scenes.append(
            {"rng": rng, "camera": camera, "lights": lights, "num": num, "objects": cs.sample_objects(rng, num)}
        )
    b, p = len(indices), size[0] * size[1]
    depth = torch.zeros(b, p)
    label = torch.zeros(b, p, dtype=torch.int64)
    pending = list(range(b))
    thresh = _min_pixels(size)
    for _ in range(MAX_VISIBILITY_ROUNDS):
        sub = _Batch([scenes[j] for j in pending], m)
        d, lab = _primary(sub, dirs, size)
        counts = _pixel_counts(lab, m)  # [b', M]
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
    rgb = _shade(_Batch(scenes, m), dirs, depth, label, size)
    return scenes, rgb, label


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
        variant: "clevr6" (3-6 objects) or "clevr10" (3-10 objects).
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
    dirs = _ray_dirs(h, w)
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
        scenes, rgb, label = _render_batch(idx, seed, variant, size, dirs)
        sl = slice(lo, lo + len(idx))
        img = rgb.reshape(len(idx), h, w, 3)
        if greyscale:
            lum = img @ torch.tensor([0.299, 0.587, 0.114])
            img = lum[..., None].expand(-1, -1, -1, 3)
        out["image"][sl] = (img * 255.0).round().to(torch.uint8).numpy()
        out["mask"][sl] = label.reshape(len(idx), h, w).to(torch.uint8).numpy()
        out["pixel_count"][sl] = _pixel_counts(label, m).numpy()
        for j, s in enumerate(scenes):
            o, k, r = s["objects"], s["num"], lo + j
            out["num_objects"][r] = k
            out["camera"][r], out["lights"][r] = s["camera"], s["lights"]
            for key in ("x", "y", "z", "rotation", "shape", "size", "material", "color"):
                out[key][r, :k] = o[key]
            out["color_rgb"][r, :k] = cs.COLORS[o["color"] - 1]
            pts = np.stack([o["x"], o["y"], o["z"]], -1)
            px, py, dep = project(pts, s["camera"], size)
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
                "pixel_coords": [int(out["pixel_coords"][i, j, 0]), int(out["pixel_coords"][i, j, 1]),
                                 float(out["pixel_coords"][i, j, 2])],
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
