"""Geometry of the built-in CLEVR renderer: camera rays, ray / object intersections, signed distances, normals,
and the tile culling that keeps the work proportional to the objects' screen area (no pixels x objects loops).

Objects (``clevr_scene``): cubes (boxes of half-size r turned about z, with CLEVR's rounded edges in their
normals), spheres of radius r and upright cylinders of radius r and half-height r, all resting on the ground
plane z = 0. The camera is CLEVR's: a pinhole (35 mm lens, 32 mm horizontal sensor) at a jittered location,
aimed at the origin. Pixels are stored tile-major (tiles of ``BLOCK`` x ``BLOCK`` pixels) so that a ray set can
be culled against an object's projected screen rectangle a tile at a time.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from slotlab.data import clevr_scene as cs

BLOCK = 8  # pixel tile size (culling granularity)
LANES = BLOCK * BLOCK
EPS = 1e-4
BOUND = torch.tensor([0.0, 3.0**0.5, 1.0, 2.0**0.5])  # bounding-sphere radius / r, by shape code
BEVEL = 0.12  # rounded edges of cubes and cylinders (SmoothCube_v2, SmoothCylinder): radius / r, normals only


# ----------------------------------------------------------------------------------------------------------
# camera
def focal_px(width: int) -> float:
    return cs.FOCAL_LENGTH_MM / cs.SENSOR_WIDTH_MM * width


def project(
    points: np.ndarray | torch.Tensor,
    camera: np.ndarray | torch.Tensor,
    size: tuple[int, int],
    focal: float | None = None,
):
    """Project world points [..., K, 3] for cameras [..., 3] (aimed at the origin) to (px, py, depth) [..., K].

    px grows to the right, py downwards (continuous pixels); depth is the distance along the viewing axis
    (Blender's world_to_camera_view z). CLEVR's ``pixel_coords`` are (round(px), round(py), depth). ``focal``:
    the focal length in pixels (default CLEVR's for the image width).
    """
    h, w = size
    pts = torch.as_tensor(points, dtype=torch.float64)
    cam = torch.as_tensor(camera, dtype=torch.float64)
    rot = camera_rotations(cam)  # [..., 3, 3]
    c = (pts - cam[..., None, :]) @ rot.transpose(-1, -2)  # [..., K, 3] camera coordinates
    depth = -c[..., 2]
    f = focal_px(w) if focal is None else focal
    px = w / 2 + f * c[..., 0] / depth
    py = h / 2 - f * c[..., 1] / depth
    return px, py, depth


def camera_rotations(camera: torch.Tensor) -> torch.Tensor:
    """World -> camera rotations [..., 3, 3] of cameras at [..., 3] aimed at the origin, z up (rows: right, up,
    backward; Blender's camera axes), as ``clevr_scene.camera_rotation`` for many cameras."""
    forward = F.normalize(-camera, dim=-1)
    z = torch.zeros_like(forward)
    z[..., 2] = 1.0
    right = F.normalize(torch.linalg.cross(forward, z), dim=-1)
    up = torch.linalg.cross(right, forward)
    return torch.stack([right, up, -forward], -2)


class Grid:
    """Pixel grid of an (h, w) image padded to whole BLOCK x BLOCK tiles, stored tile-major (``focal``: the focal
    length in pixels, default CLEVR's for width w)."""

    def __init__(self, h: int, w: int, focal: float | None = None):
        self.h, self.w = h, w
        self.hb, self.wb = -(-h // BLOCK), -(-w // BLOCK)
        self.nblk = self.hb * self.wb
        self.p = self.nblk * LANES  # pixels incl. padding
        hp, wp = self.hb * BLOCK, self.wb * BLOCK
        self.f = f = focal_px(w) if focal is None else focal
        ys = (torch.arange(hp, dtype=torch.float64) + 0.5 - h / 2) / f
        xs = (torch.arange(wp, dtype=torch.float64) + 0.5 - w / 2) / f
        cam = torch.stack(
            [xs[None, :].expand(hp, wp), -ys[:, None].expand(hp, wp), torch.full((hp, wp), -1.0, dtype=xs.dtype)],
            -1,
        )  # [Hp, Wp, 3] camera coordinates
        self.cam_dirs = self.to_tiles(F.normalize(cam, dim=-1)[None].float())[0]  # [P, 3] camera space

    def to_tiles(self, x: torch.Tensor) -> torch.Tensor:
        """[N, Hp, Wp, C] image layout -> [N, nblk * LANES, C] tile-major layout."""
        n, c = x.shape[0], x.shape[-1]
        x = x.reshape(n, self.hb, BLOCK, self.wb, BLOCK, c).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(n, self.p, c)

    def to_image(self, x: torch.Tensor, crop: bool = True) -> torch.Tensor:
        """[N, nblk * LANES, C] tile-major -> [N, h, w, C] image layout (padding cropped unless ``crop=False``)."""
        n, c = x.shape[0], x.shape[-1]
        x = x.reshape(n, self.hb, self.wb, BLOCK, BLOCK, c).permute(0, 1, 3, 2, 4, 5)
        x = x.reshape(n, self.hb * BLOCK, self.wb * BLOCK, c)
        return x[:, : self.h, : self.w] if crop else x


# ----------------------------------------------------------------------------------------------------------
# ray / object intersections with broadcasting: o, d [S, K, 3] (or [S, 1, 3]); object parameters [S, 1]
# (centre [S, 1, 3]); t [S, K] = inf on a miss. Only hits entering the object at t > EPS count.
def hit_sphere(o: torch.Tensor, d: torch.Tensor, c: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    ox, oy, oz = (o - c).unbind(-1)
    dx, dy, dz = d.unbind(-1)
    b = ox * dx + oy * dy + oz * dz
    disc = b * b - (ox * ox + oy * oy + oz * oz - r * r)
    t = -b - disc.clamp(min=0).sqrt()
    return torch.where((disc >= 0) & (t > EPS), t, torch.inf)


def hit_cylinder(o: torch.Tensor, d: torch.Tensor, c: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
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


def hit_cube(
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


# signed distances of object-centred points q [..., 3] to objects of size r [...] (cubes turned by cos / sin)
def sdf_sphere(q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return q.norm(dim=-1) - r


def sdf_cube(q: torch.Tensor, r: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    qx, qy, qz = q.unbind(-1)
    dx = (cos * qx + sin * qy).abs() - r
    dy = (cos * qy - sin * qx).abs() - r
    dz = qz.abs() - r
    ox, oy, oz = dx.clamp(min=0), dy.clamp(min=0), dz.clamp(min=0)
    return torch.sqrt(ox * ox + oy * oy + oz * oz) + torch.maximum(torch.maximum(dx, dy), dz).clamp(max=0)


def sdf_cylinder(q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    qx, qy, qz = q.unbind(-1)
    dr = torch.sqrt(qx * qx + qy * qy) - r
    dz = qz.abs() - r
    orr, oz = dr.clamp(min=0), dz.clamp(min=0)
    return torch.sqrt(orr * orr + oz * oz) + torch.maximum(dr, dz).clamp(max=0)


def seg_near(o: torch.Tensor, l: torch.Tensor, c: torch.Tensor, lim: torch.Tensor) -> torch.Tensor:
    """Does the segment o -> l pass within lim of c? o, l, c [..., 3] (broadcast), lim [...]."""
    sx, sy, sz = (l - o).unbind(-1)
    vx, vy, vz = (c - o).unbind(-1)
    s = ((vx * sx + vy * sy + vz * sz) / (sx * sx + sy * sy + sz * sz)).clamp(0, 1)
    ex, ey, ez = vx - s * sx, vy - s * sy, vz - s * sz
    return ex * ex + ey * ey + ez * ez <= lim * lim


# ----------------------------------------------------------------------------------------------------------
class Batch:
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
            color[i, :k] = cs.COLORS_LINEAR[np.asarray(o["color"]) - 1]
            metal[i, :k] = np.asarray(o["material"]) == 2
        self.center = torch.from_numpy(center.reshape(-1, 3))  # [B * M, 3]
        self.r = torch.from_numpy(r.reshape(-1))  # [B * M]
        self.shape = torch.from_numpy(shape.reshape(-1))
        self.cos = torch.from_numpy(np.cos(theta).astype(f32).reshape(-1))
        self.sin = torch.from_numpy(np.sin(theta).astype(f32).reshape(-1))
        self.albedo = torch.from_numpy(color.reshape(-1, 3))  # linear reflectance [B * M, 3]
        self.metal = torch.from_numpy(metal.reshape(-1))
        self.camera64 = np.stack([np.asarray(s["camera"], np.float64) for s in scenes])  # [B, 3]
        self.camera = torch.from_numpy(self.camera64.astype(f32))
        self.rot = camera_rotations(torch.from_numpy(self.camera64)).float()  # [B, 3, 3]
        self.lights = torch.from_numpy(np.stack([s["lights"] for s in scenes]).astype(f32))  # [B, L, 3]
        ext_xy = torch.where(self.shape == 1, self.r * (self.cos.abs() + self.sin.abs()), self.r)
        self.half = torch.stack([ext_xy, ext_xy, self.r], -1)  # [B * M, 3] world AABB half extents
        self.bound = self.r * BOUND[self.shape]  # [B * M] bounding-sphere radii

    def dirs(self, grid: Grid) -> torch.Tensor:
        """Unit world directions [B, P, 3] of the primary rays (tile-major)."""
        return grid.cam_dirs @ self.rot  # camera -> world (rotation rows are the camera axes)

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
                t[sel] = hit_cube(o[sel], d[sel], c, r, self.cos[ob][:, None], self.sin[ob][:, None])
            elif code == 2:
                t[sel] = hit_sphere(o[sel], d[sel], c, r)
            else:
                t[sel] = hit_cylinder(o[sel], d[sel], c, r)
        return t

    def sdf(self, obj: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Signed distances [S] of points [S, 3] to objects ``obj`` [S] (table rows)."""
        out = torch.empty(len(obj))
        shape = self.shape[obj]
        for code in (1, 2, 3):
            sel = torch.nonzero(shape == code).squeeze(1)
            if sel.numel() == 0:
                continue
            ob = obj[sel]
            q = points[sel] - self.center[ob]
            if code == 1:
                out[sel] = sdf_cube(q, self.r[ob], self.cos[ob], self.sin[ob])
            elif code == 2:
                out[sel] = sdf_sphere(q, self.r[ob])
            else:
                out[sel] = sdf_cylinder(q, self.r[ob])
        return out

    def normals(self, obj: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Unit surface normals [Q, 3] of objects ``obj`` [Q] at surface points [Q, 3]; the edges of cubes and
        cylinders are rounded (radius BEVEL * r) in the normals, as CLEVR's SmoothCube / SmoothCylinder."""
        qx, qy, qz = (points - self.center[obj]).unbind(-1)
        r = self.r[obj]
        shape = self.shape[obj]
        cos, sin = self.cos[obj], self.sin[obj]
        inner = r * (1.0 - BEVEL)
        # cube: offset from the inner box (half-size r - bevel): a flat face's normal, rounded near the edges
        lx, ly = cos * qx + sin * qy, cos * qy - sin * qx
        ex, ey, ez = (lx - lx.clamp(-inner, inner)), (ly - ly.clamp(-inner, inner)), (qz - qz.clamp(-inner, inner))
        cube = torch.stack([cos * ex - sin * ey, sin * ex + cos * ey, ez], -1)
        # cylinder: offset from the inner cylinder (radius, half-height r - bevel)
        rho = torch.sqrt(qx * qx + qy * qy).clamp(min=1e-9)
        er = (rho - inner).clamp(min=0)
        cyl = torch.stack([qx / rho * er, qy / rho * er, qz - qz.clamp(-inner, inner)], -1)
        sphere = torch.stack([qx, qy, qz], -1)
        n = torch.where((shape == 1)[:, None], cube, torch.where((shape == 2)[:, None], sphere, cyl))
        return F.normalize(n, dim=-1)


def tile_rects(points: torch.Tensor, camera: np.ndarray, grid: Grid) -> torch.Tensor:
    """Tile rectangles [..., 4] (x0, x1, y0, y1 in tiles; x1, y1 exclusive) of ``grid`` covering the screen
    projection of points [B, ..., K, 3] (the whole image if a point is behind the camera)."""
    h, w = grid.h, grid.w
    shp = points.shape
    px, py, depth = project(points.reshape(shp[0], -1, 3).double(), camera, (h, w), grid.f)
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


def pairs(rect: torch.Tensor, valid: torch.Tensor, wb: int) -> tuple[torch.Tensor, torch.Tensor]:
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


def primary(batch: Batch, grid: Grid, dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Primary rays dirs [B, P, 3]: depth along the ray [B, P] (ground or object; inf = sky), labels [B, P]
    (0 = ground)."""
    b, m, p = batch.b, batch.m, grid.p
    dz = dirs[..., 2]  # [B, P]
    oz = batch.camera[:, 2:3]  # [B, 1]
    depth = torch.where(dz < -1e-6, -oz / dz.clamp(max=-1e-6), torch.inf).reshape(-1)  # [B * P] ground
    label = torch.zeros(b * p, dtype=torch.int64)
    rect = tile_rects(batch.corners(), batch.camera64, grid).reshape(b * m, 4)
    obj, tile = pairs(rect, batch.shape > 0, grid.wb)  # obj = b * M + m
    if obj.numel() == 0:
        return depth.reshape(b, p), label.reshape(b, p)
    bi = torch.div(obj, m, rounding_mode="floor")
    d = dirs.reshape(b * grid.nblk, LANES, 3)[bi * grid.nblk + tile]  # [S, LANES, 3]
    t = batch.hit(obj, batch.camera[bi][:, None, :], d)  # [S, LANES]
    flat = ((bi * grid.nblk + tile) * LANES)[:, None] + torch.arange(LANES)  # [S, LANES]
    depth.scatter_reduce_(0, flat.reshape(-1), t.reshape(-1), reduce="amin")
    win = torch.isfinite(t) & (t == depth[flat])
    label[flat[win]] = (obj - bi * m + 1)[:, None].expand_as(t)[win]
    return depth.reshape(b, p), label.reshape(b, p)


def nearest_hits(batch: Batch, bi: torch.Tensor, o: torch.Tensor, d: torch.Tensor, skip: torch.Tensor | None = None):
    """Nearest hits of a few rays (origins o, unit directions d [R, 3] in scenes bi [R]) against the objects of
    their scenes whose bounding spheres they pass through: (t [R], label [R]; label 0 and t = inf on a miss).
    ``skip`` [R]: a label to ignore."""
    m = batch.m
    r = len(bi)
    obj = bi[:, None] * m + torch.arange(m)  # [R, M]
    oc = batch.center[obj] - o[:, None]  # [R, M, 3]
    along = (oc * d[:, None]).sum(-1)
    bound = batch.bound[obj]
    near = ((oc * oc).sum(-1) - along * along <= bound * bound) & (along > -bound) & (batch.shape[obj] > 0)
    if skip is not None:
        near &= torch.arange(m)[None] + 1 != skip[:, None]
    ri, mi = torch.nonzero(near, as_tuple=True)  # candidate (ray, object) pairs
    t = torch.full((r, m), torch.inf)
    if ri.numel():
        t[ri, mi] = batch.hit(obj[ri, mi], o[ri][:, None], d[ri][:, None])[:, 0]
    tmin, arg = t.min(1)
    return tmin, torch.where(torch.isfinite(tmin), arg + 1, 0)
