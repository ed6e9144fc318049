"""Light and materials of the built-in CLEVR renderer: what colour each primary ray's hit point has.

Everything is scene-linear radiance, as in Blender's Cycles (CLEVR's renderer); ``to_srgb`` turns it into the
8-bit image like Blender's default (sRGB) view transform. The model, term by term:

- three area lights (key / fill / back; ``clevr_scene``: jittered positions, Kubric's colours) facing the
  origin: irradiance I * cos(surface) * cos(emitter) / distance^2, so the ground darkens with distance, towards
  the top of the image, as in CLEVR;
- soft shadows: per shadow ray and occluder, the signed distance h of the ray to the occluder's surface (the
  objects' exact signed distance functions, taken at the ray's closest approach to the object's centre) against
  the width w = a * s / D of the light's cone there (light radius a, occluder at s of the ray's length D):
  visibility smoothstep(-1, 1, h / w), so shadows are sharp at the contact and soft further away;
- a uniform world ("sky") radiance from above and light bounced from the ground onto the objects' lower halves
  (an analytic ambient occlusion of the ground by the objects and a glossy ground were tried: the fit to real
  renders set both to zero);
- ground: grey diffuse;
- rubber: diffuse in the object's colour plus a weak white sheen;
- metal: the mirror reflection (one bounce) of the world, of the ground and of the other objects (their diffuse
  colours), blurred on the object in screen space (the glossiness), and the mirror images of the three area
  lights (discs of the lights' radiance, blurred by a roughness angle, clipping to white, with a broad glossy
  tail; supersampled where the surface turns fast, as they can be thinner than a pixel), all tinted by the
  metal's colour.

The constants (``PARAMS``) are fitted to real CLEVR renders of known scenes by ``tools/fit_clevr_shading.py``:
the generator's lights and materials live in a .blend file whose values are not readable here, so their effect
is measured instead (see docs/data.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from slotlab.data.clevr_geometry import BLOCK, LANES, Batch, Grid, focal_px, nearest_hits, pairs, seg_near, tile_rects

# Light colours (Kubric's CLEVR lights: key 0xffedd0, fill 0xc2d0ff, back white).
LIGHT_COLOR = torch.tensor([[1.0, 0xED / 255, 0xD0 / 255], [0xC2 / 255, 0xD0 / 255, 1.0], [1.0, 1.0, 1.0]])

PARAMS: dict[str, float] = {
    "key": 6.7574,  # light intensities (irradiance * distance^2 facing the light)
    "fill": 1.2942,
    "back": 2.8743,
    "key_radius": 0.2838,  # light radii (soft shadows)
    "fill_radius": 0.2838,
    "back_radius": 0.5676,
    "sky": 0.1635,  # world radiance
    "ground_bounce": 0.1437,  # radiance from below onto the objects
    "ground_albedo": 0.8169,
    "rubber_gloss": 0.0442,
    "rubber_exp": 10.0,
    "metal_diffuse": 0.0069,
    "metal_reflect": 0.8837,
    "metal_rough": 0.2984,  # glossy roughness: the lights' mirror images are blurred by this angle (radians)
    "metal_spot": 12.7482,  # the lights' mirror images: radiance / the lights' own
    "metal_broad": 0.7593,  # a broad glossy lobe around the lights' mirror images (Phong, normalised) ...
    "metal_broad_exp": 0.6878,  # ... and its exponent
    "env": 0.075,  # the world's radiance seen in metal (the sky's, above, also lights the scene)
    "metal_blur": 2.0,  # passes of a 3x3 box blur of the reflection on the object (glossy roughness)
    "exposure": 1.0,
}
HIGHLIGHT_SUBSAMPLES = torch.tensor([[-0.125, -0.375], [0.375, -0.125], [0.125, 0.375], [-0.375, 0.125]])
HIGHLIGHT_TURN = 0.995  # supersample the highlights where the normal and its 3x3 mean differ by > ~6 degrees
_INTENSITY = ("key", "fill", "back")
_RADIUS = ("key_radius", "fill_radius", "back_radius")


def _srgb(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp(min=0.0031308).pow(1 / 2.4) - 0.055)


_SRGB_STEPS = 1 << 14
_SRGB_LUT = _srgb(torch.arange(_SRGB_STEPS + 1, dtype=torch.float64) / _SRGB_STEPS).float()


def to_srgb(x: torch.Tensor) -> torch.Tensor:
    """Scene-linear values -> sRGB-encoded values in [0, 1] (clipped, as Blender's default view transform), by a
    table of 2^14 + 1 steps (within 0.2 of an 8-bit level of the exact curve)."""
    idx = (x.clamp(0.0, 1.0) * _SRGB_STEPS + 0.5).long()
    return _SRGB_LUT[idx]


def light_terms(
    lights: torch.Tensor,
    pts: torch.Tensor,
    nrm: torch.Tensor,
    params: dict,
    view: torch.Tensor | None = None,
    exp: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per light l: diffuse irradiance E [L, ...] of points pts with normals nrm [..., 3] lit by ``lights``
    [..., L, 3] (broadcast against the points), unshadowed; with view directions ``view`` (from the camera) also a
    glossy term G [L, ...]: a normalised Blinn-Phong lobe of exponent ``exp`` times the same light falloff."""
    px, py, pz = pts.unbind(-1)
    nx, ny, nz = nrm.unbind(-1)
    es, gs = [], []
    for li, key in enumerate(_INTENSITY):
        lx, ly, lz = lights[..., li, :].unbind(-1)  # broadcasts against the points
        sx, sy, sz = lx - px, ly - py, lz - pz
        inv = torch.rsqrt((sx * sx + sy * sy + sz * sz).clamp(min=1e-6))
        sx, sy, sz = sx * inv, sy * inv, sz * inv  # unit direction to the light
        cos_e = ((sx * lx + sy * ly + sz * lz) * torch.rsqrt(lx * lx + ly * ly + lz * lz)).clamp(min=0)
        fall = params[key] * cos_e * inv * inv  # the light faces the origin
        ndl = (sx * nx + sy * ny + sz * nz).clamp(min=0)
        es.append(fall * ndl)
        if view is not None:
            hx, hy, hz = sx - view[..., 0], sy - view[..., 1], sz - view[..., 2]
            ndh = (hx * nx + hy * ny + hz * nz) * torch.rsqrt((hx * hx + hy * hy + hz * hz).clamp(min=1e-12))
            gs.append(torch.where(ndl > 0, fall * (exp + 2.0) / 8.0 * ndh.clamp(0, 1).pow(exp), 0.0))
    return torch.stack(es), (torch.stack(gs) if view is not None else None)


def _smoothstep(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0, 1)
    return x * x * (3 - 2 * x)


def soft_shadows(
    batch: Batch,
    grid: Grid,
    label: torch.Tensor,
    origin: torch.Tensor,
    params: dict,
    active: torch.Tensor | None = None,
) -> torch.Tensor:
    """Visibility [L, B * P] in [0, 1] of the three lights from points ``origin`` [B * P, 3] (module docstring);
    only where ``active`` [B, P] (default: everywhere; elsewhere 1).

    Culling, coarse to fine: tiles inside the screen rectangle of an object's shadow volume (its AABB and its
    projections onto the ground from the light's centre and edges); tile bounding sphere vs the object's
    bounding sphere widened by the light's radius; the same per pixel; then the signed distances.
    """
    b, m, p = batch.b, batch.m, grid.p
    nl = batch.lights.shape[1]
    vis = torch.ones(nl * b * p)
    radius = torch.tensor([float(params[k]) for k in _RADIUS])  # [L]
    corners = batch.corners()  # [B, M, 8, 3]
    offs = torch.tensor([[1.0, 1.0, 0.0], [1.0, -1.0, 0.0], [-1.0, 1.0, 0.0], [-1.0, -1.0, 0.0]])  # [4, 3]
    lpos = batch.lights[:, :, None] + offs * radius[None, :, None, None]  # [B, L, 4, 3] light edges
    lpos = lpos[:, None, :, :, None]  # [B, 1, L, 4, 1, 3]
    cz = corners[:, :, None, None, :, 2:3]  # [B, M, 1, 1, 8, 1]
    lz = lpos[..., 2:3]
    k = lz / (lz - cz).clamp(min=1e-3)  # project corners from the light points onto z = 0
    ground = (lpos + (corners[:, :, None, None] - lpos) * k).flatten(3, 4)  # [B, M, L, 32, 3]
    hull = torch.cat([corners[:, :, None].expand(-1, -1, nl, -1, -1), ground], 3)  # [B, M, L, 40, 3]
    rect = tile_rects(hull, batch.camera64, grid)  # [B, M, L, 4]
    too_low = batch.lights[:, None, :, 2] - corners[..., 2].amax(-1)[..., None] <= 1e-2  # [B, M, L]
    rect = torch.where(too_low[..., None], torch.tensor([0, grid.wb, 0, grid.hb]), rect).reshape(-1, 4)
    valid = (batch.shape > 0)[:, None].expand(b * m, nl).reshape(-1)
    rid, tile = pairs(rect, valid, grid.wb)  # rid = (b * M + m) * L + l
    if rid.numel() == 0:
        return vis.reshape(nl, b * p)
    l_r = batch.lights[:, None].expand(b, m, nl, 3).reshape(-1, 3)  # [R, 3]
    c_r = batch.center[:, None].expand(b * m, nl, 3).reshape(-1, 3)
    a_r = radius.repeat(b * m)  # [R]
    lim_r = batch.bound[:, None].expand(b * m, nl).reshape(-1) + a_r
    org = origin.reshape(b * grid.nblk, LANES, 3)
    hi, lo = org.amax(1), org.amin(1)  # [B * nblk, 3] tile bounding boxes
    tc = 0.5 * (hi + lo)
    trad = 0.5 * (hi - lo).norm(dim=-1)  # [B * nblk]
    gt = torch.div(rid, m * nl, rounding_mode="floor") * grid.nblk + tile  # global tile index
    near = seg_near(tc[gt], l_r[rid], c_r[rid], lim_r[rid] + trad[gt])
    lanes = None if active is None else active.reshape(-1, LANES)
    if lanes is not None:
        near &= lanes.any(1)[gt]
    sel = torch.nonzero(near).squeeze(1)
    rid, gt = rid[sel], gt[sel]
    obj = torch.div(rid, nl, rounding_mode="floor")  # table row b * M + m
    o = org[gt]  # [S, LANES, 3]
    own = obj - torch.div(obj, m, rounding_mode="floor") * m + 1  # the object's label
    keep = (label.reshape(-1, LANES)[gt] != own[:, None]) & seg_near(
        o, l_r[rid][:, None], c_r[rid][:, None], lim_r[rid][:, None]
    )  # [S, LANES]; convex objects do not shadow themselves (where n.l < 0 it is unlit anyway)
    if lanes is not None:
        keep &= lanes[gt]
    idx = torch.nonzero(keep.reshape(-1)).squeeze(1)
    si, lane = torch.div(idx, LANES, rounding_mode="floor"), idx % LANES
    o = o.reshape(-1, 3)[idx]  # [T, 3]
    rid, obj = rid[si], obj[si]
    seg = l_r[rid] - o
    dist = seg.norm(dim=-1).clamp(min=1e-6)  # [T]
    u = seg / dist[:, None]
    s0 = ((c_r[rid] - o) * u).sum(-1).clamp(min=1e-3)
    s0 = torch.minimum(s0, dist)  # closest approach to the centre
    h = batch.sdf(obj, o + s0[:, None] * u)  # [T]
    w = a_r[rid] * s0 / dist + 1e-3  # the light's cone radius there
    v = _smoothstep(0.5 + 0.5 * h / w)  # [T]
    vis.scatter_reduce_(0, (rid % nl) * (b * p) + gt[si] * LANES + lane, v, reduce="amin")
    return vis.reshape(nl, b * p)


def _diffuse_at(batch: Batch, bi: torch.Tensor, pts: torch.Tensor, nrm: torch.Tensor, params: dict) -> torch.Tensor:
    """Unshadowed diffuse irradiance [Q, 3] (lights and sky / ground bounce) at points pts, normals nrm [Q, 3]."""
    e, _ = light_terms(batch.lights[bi], pts, nrm, params)  # [L, Q]
    direct = e.T @ LIGHT_COLOR  # [Q, 3]
    nz = nrm[:, 2:3]
    return direct + params["sky"] * (1 + nz) / 2 + params["ground_bounce"] * (1 - nz) / 2


def _reflection(batch: Batch, bi, label_q, pts, nrm, view, params: dict) -> torch.Tensor:
    """Radiance [Q, 3] seen in the mirror direction from metal points (one bounce; module docstring)."""
    r = view - 2 * (view * nrm).sum(-1, keepdim=True) * nrm  # [Q, 3]
    o = pts + 1e-3 * nrm
    t_obj, lab = nearest_hits(batch, bi, o, r, skip=label_q)
    t_gnd = torch.where(r[:, 2] < -1e-6, -o[:, 2] / r[:, 2].clamp(max=-1e-6), torch.inf)
    out = torch.full((len(bi), 3), params["env"])
    hit_obj = t_obj < t_gnd
    sel = torch.nonzero(hit_obj & torch.isfinite(t_obj)).squeeze(1)
    if sel.numel():
        row = bi[sel] * batch.m + lab[sel] - 1
        q = o[sel] + t_obj[sel, None] * r[sel]
        n = batch.normals(row, q)
        out[sel] = batch.albedo[row] * _diffuse_at(batch, bi[sel], q, n, params)
    sel = torch.nonzero(~hit_obj & torch.isfinite(t_gnd)).squeeze(1)
    if sel.numel():
        q = o[sel] + t_gnd[sel, None] * r[sel]
        q[:, 2] = 0.0
        up = torch.zeros_like(q)
        up[:, 2] = 1.0
        out[sel] = params["ground_albedo"] * _diffuse_at(batch, bi[sel], q, up, params)
    return out


def _light_images(
    lights: torch.Tensor, pts: torch.Tensor, mirror: torch.Tensor, vis: torch.Tensor, rough: float, params: dict
) -> torch.Tensor:
    """Radiance [Q, 3] of the lights' mirror images seen from points pts along mirror directions [Q, 3] (lights
    [Q, L, 3], visibility vis [L, Q]): each light is a disc of radius a and radiance I / (pi a^2) (the same
    light as its irradiance I / D^2), blurred by the roughness angle ``rough`` with its energy kept, plus a broad
    normalised Phong lobe around the mirror direction (the long tail of a rough metal's reflection)."""
    out = torch.zeros(len(pts), 3)
    for li, key in enumerate(_INTENSITY):
        a = params[_RADIUS[li]]
        v = lights[:, li] - pts
        dist = v.norm(dim=-1).clamp(min=1e-6)
        w = v / dist[:, None]
        cos_e = (w * F.normalize(lights[:, li], dim=-1)).sum(-1).clamp(min=0)
        theta = torch.acos((w * mirror).sum(-1).clamp(-1, 1))  # angle between the mirror ray and the light
        size = a / dist  # the light's angular radius
        cover = _smoothstep((size + rough - theta) / (2 * rough))
        peak = params["metal_spot"] * params[key] / (torch.pi * a * a) * (size / (size + rough)) ** 2
        e = params["metal_broad_exp"]
        lobe = (
            params["metal_broad"]
            * params[key]
            / (dist * dist)
            * (e + 1)
            / (2 * torch.pi)
            * torch.cos(theta).clamp(min=0).pow(e)
        )
        out += ((cover * peak + lobe) * cos_e * vis[li])[:, None] * LIGHT_COLOR[li]
    return out


def _highlights(batch: Batch, grid: Grid, b: int, pix, obj, pts, nrm, vis, params: dict) -> torch.Tensor:
    """The lights' mirror images [Q, 3] on metal pixels ``pix`` [Q] (tile-major indices; objects ``obj``, hit
    points pts, normals nrm [Q, 3], visibility vis [L, Q]), anti-aliased: where the normal turns fast between
    neighbouring pixels (the rounded edges, silhouettes), a highlight can be thinner than a pixel and would show as
    dots, so there the pixel centre and ``HIGHLIGHT_SUBSAMPLES`` sub-pixel rays against the same object are
    averaged (a sub-pixel ray that misses the object takes the centre's normal)."""
    rough = params["metal_rough"]
    view = F.normalize(pts - batch.camera[torch.div(pix, grid.p, rounding_mode="floor")], dim=-1)
    mirror = view - 2 * (view * nrm).sum(-1, keepdim=True) * nrm
    b_idx = torch.div(pix, grid.p, rounding_mode="floor")
    out = _light_images(batch.lights[b_idx], pts, mirror, vis, rough, params)
    mean = _blur_on_image(grid, b, pix, nrm, 1)  # [Q, 3] mean normal over 3x3 pixels of metal
    fast = torch.nonzero((nrm * mean).sum(-1) < HIGHLIGHT_TURN).squeeze(1)
    if fast.numel() == 0:
        return out
    pix, obj, pts, nrm, vis, b_idx = pix[fast], obj[fast], pts[fast], nrm[fast], vis[:, fast], b_idx[fast]
    local = pix - b_idx * grid.p
    tile, lane = torch.div(local, LANES, rounding_mode="floor"), local % LANES
    y = torch.div(tile, grid.wb, rounding_mode="floor") * BLOCK + torch.div(lane, BLOCK, rounding_mode="floor")
    x = (tile % grid.wb) * BLOCK + lane % BLOCK
    sub = HIGHLIGHT_SUBSAMPLES  # [S, 2]
    ns = len(sub)
    sx = x[:, None] + 0.5 + sub[:, 0]  # [F, S]
    sy = y[:, None] + 0.5 + sub[:, 1]
    cam = torch.stack([(sx - grid.w / 2) / grid.f, -(sy - grid.h / 2) / grid.f, -torch.ones_like(sx)], -1)
    d = F.normalize(cam, dim=-1) @ batch.rot[b_idx]  # [F, S, 3] world directions
    o = batch.camera[b_idx]  # [F, 3]
    t = batch.hit(obj, o[:, None], d)  # [F, S]
    hit = torch.isfinite(t)
    q = torch.where(hit[..., None], o[:, None] + torch.where(hit, t, 0.0)[..., None] * d, pts[:, None])
    n = batch.normals(obj.repeat_interleave(ns), q.reshape(-1, 3)).reshape(-1, ns, 3)
    n = torch.where(hit[..., None], n, nrm[:, None])
    mir = d - 2 * (d * n).sum(-1, keepdim=True) * n
    lights = batch.lights[b_idx].repeat_interleave(ns, 0)
    img = _light_images(lights, q.reshape(-1, 3), mir.reshape(-1, 3), vis.repeat_interleave(ns, 1), rough, params)
    out[fast] = (out[fast] + img.reshape(-1, ns, 3).sum(1)) / (ns + 1)
    return out


def _blur_on_image(grid: Grid, b: int, pix: torch.Tensor, x: torch.Tensor, passes: int) -> torch.Tensor:
    """Values x [Q, C] at pixels ``pix`` [Q] (tile-major indices into [B * P]) blurred among themselves:
    a normalised 3x3 box blur, ``passes`` times, in image space (only the rows and columns they span)."""
    if passes <= 0:
        return x
    c = x.shape[1]
    img = torch.zeros(b * grid.p, c + 1)
    img[pix, :c] = x
    img[pix, c] = 1.0
    y = grid.to_image(img.reshape(b, grid.p, c + 1), crop=False).permute(0, 3, 1, 2)  # [B, C + 1, Hp, Wp]
    rows = torch.nonzero(y[:, c].any(0).any(1)).squeeze(1)
    cols = torch.nonzero(y[:, c].any(0).any(0)).squeeze(1)
    r0, r1 = int(rows.min()), int(rows.max()) + 1
    c0, c1 = int(cols.min()), int(cols.max()) + 1
    z = y[:, :, r0:r1, c0:c1].contiguous()
    mask = z[:, c:] > 0
    for _ in range(passes):
        z = F.pad(z, (1, 1, 1, 1))
        z = z[..., :-2] + z[..., 1:-1] + z[..., 2:]
        z = z[:, :, :-2] + z[:, :, 1:-1] + z[:, :, 2:]
        z = z * mask  # stay on the pixels (their mask)
    y[:, :, r0:r1, c0:c1] = z
    flat = grid.to_tiles(y.permute(0, 2, 3, 1)).reshape(b * grid.p, c + 1)[pix]
    return flat[:, :c] / flat[:, c:].clamp(min=1e-6)


def _ground_image(batch: Batch, grid: Grid, params: dict) -> torch.Tensor:
    """Radiance [B, P, 3] (tile-major) of the ground plane behind every pixel, shaded on a grid of half the
    resolution (ground points where the half-size pixels' rays meet z = 0) and interpolated bilinearly: the
    ground's light, soft shadows and occlusion vary slowly across the image."""
    b = batch.b
    h2, w2 = -(-grid.h // 2), -(-grid.w // 2)
    half = Grid(h2, w2, focal=focal_px(grid.w) / 2)
    dirs = batch.dirs(half)  # [B, P2, 3]
    p2 = half.p
    t = -batch.camera[:, None, 2] / dirs[..., 2].clamp(max=-1e-6)  # [B, P2]
    pts = batch.camera[:, None] + t[..., None] * dirs
    pts[..., 2] = 0.0
    up = torch.zeros_like(pts)
    up[..., 2] = 1.0
    vis = soft_shadows(batch, half, torch.zeros(b, p2, dtype=torch.int64), (pts + 1e-3 * up).reshape(-1, 3), params)
    e, _ = light_terms(batch.lights[:, None], pts, up, params)  # [L, B, P2]
    rad = params["ground_albedo"] * ((e.reshape(-1, b * p2) * vis).T @ LIGHT_COLOR + params["sky"])
    img = half.to_image(rad.reshape(b, p2, 3)).permute(0, 3, 1, 2)  # [B, 3, h2, w2]
    img = F.interpolate(img, size=(2 * h2, 2 * w2), mode="bilinear", align_corners=False)
    full = torch.zeros(b, 3, grid.hb * BLOCK, grid.wb * BLOCK)
    hh, ww = min(grid.h, 2 * h2), min(grid.w, 2 * w2)
    full[:, :, :hh, :ww] = img[:, :, :hh, :ww]
    return grid.to_tiles(full.permute(0, 2, 3, 1))


def shade(
    batch: Batch, grid: Grid, dirs: torch.Tensor, depth: torch.Tensor, label: torch.Tensor, params: dict | None = None
) -> torch.Tensor:
    """Scene-linear radiance [B, P, 3] (tile-major) of the primary hits (dirs [B, P, 3], depth, label [B, P])."""
    params = PARAMS if params is None else params
    b, p = label.shape
    m = batch.m
    rgb = _ground_image(batch, grid, params).reshape(b * p, 3)
    lab = label.reshape(-1)
    obj_pix = torch.nonzero(lab > 0).squeeze(1)  # [Q] object pixels
    if obj_pix.numel():
        bi = torch.div(obj_pix, p, rounding_mode="floor")
        obj = bi * m + lab[obj_pix] - 1  # table rows
        view = dirs.reshape(b * p, 3)[obj_pix]  # [Q, 3]
        pts = batch.camera[bi] + depth.reshape(-1)[obj_pix, None] * view
        nrm = batch.normals(obj, pts)
        origin = torch.zeros(b * p, 3)
        origin[obj_pix] = pts + 1e-3 * nrm
        vis = soft_shadows(batch, grid, label, origin, params, active=lab > 0)[:, obj_pix]  # [L, Q]
        metal = batch.metal[obj]
        e, g = light_terms(batch.lights[bi], pts, nrm, params, view, params["rubber_exp"])  # [L, Q]
        direct = (e * vis).T @ LIGHT_COLOR  # [Q, 3]
        gloss = (g * vis).T @ LIGHT_COLOR
        nz = nrm[:, 2:3]
        diffuse = direct + params["sky"] * (1 + nz) / 2 + params["ground_bounce"] * (1 - nz) / 2
        albedo = batch.albedo[obj]  # [Q, 3]
        out = albedo * diffuse + params["rubber_gloss"] * gloss  # rubber
        mi = torch.nonzero(metal).squeeze(1)
        if mi.numel():
            refl = _reflection(batch, bi[mi], lab[obj_pix][mi], pts[mi], nrm[mi], view[mi], params)
            refl = _blur_on_image(grid, b, obj_pix[mi], refl, int(params["metal_blur"]))
            refl = refl + _highlights(batch, grid, b, obj_pix[mi], obj[mi], pts[mi], nrm[mi], vis[:, mi], params)
            out[mi] = albedo[mi] * (params["metal_diffuse"] * diffuse[mi] + params["metal_reflect"] * refl)
        rgb[obj_pix] = out
    return (rgb * params["exposure"]).reshape(b, p, 3)
