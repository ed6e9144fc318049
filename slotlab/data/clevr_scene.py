"""CLEVR scene sampling: constants, camera geometry and object placement (no pixels).

Part of the procedural CLEVR data used for the paper's CLEVR6 object discovery (Section 4.1) and CLEVR10 set
prediction (Section 4.2) experiments. It follows facebookresearch/clevr-dataset-gen (``render_images.py`` with
its default arguments, ``data/properties.json``):

- camera: Blender's default camera of the base scene at (7.48113, -6.50764, 5.34367), aimed at the origin (a
  track-to constraint), 35 mm lens on a 32 mm sensor; each scene moves it by U(-0.5, 0.5) per axis and it stays
  aimed at the origin. The scene's ``directions`` (and so the margin rule) come from the un-jittered camera:
  behind = (-0.75449, 0.65631, 0), exactly the value in CLEVR's scene files. Both facts were recovered from real
  CLEVR scene files: with this model the objects' ``pixel_coords`` of ten real scenes are reproduced within
  0.27 px RMS (their rounding) by a jitter inside +-0.5 per axis (``clevr_compare.fit_camera``);
- key / fill / back light jitter U(-1, 1) per axis; 8 colours, 2 materials, 3 shapes, 2 sizes (r = 0.35, 0.7);
- objects at x, y ~ U(-3, 3), z = r, rotation U(0, 360) degrees, minimum distance 0.25 between object bounding
  circles and a margin of 0.4 along the left / right / front / behind directions; after 50 failed placement
  tries of one object all objects are resampled. Cubes have half-size r and z = r like the other shapes: the
  generator's ``r /= sqrt(2)`` for cubes tests ``obj_name == 'Cube'``, but the cube's name is
  ``SmoothCube_v2``, so it never applies (real CLEVR scene files hold z = 0.35 / 0.7 for cubes). The minimum
  number of visible pixels per object (200 at the default 320x240) is enforced by the renderer
  (``clevr_render``), which calls ``sample_objects`` again for a scene that fails it, as CLEVR does.

The light positions (not stored in a readable form in CLEVR's ``base_scene.blend``) are those of Kubric's CLEVR
re-creation: key (6.44671, -2.90517, 4.2584), fill (-4.67112, -4.0136, 3.01122), back (-1.1685, 2.64602,
5.81574).

Categorical attributes are coded 1-based (0 = padding / no object) in the order of the names below, which
is the class order of the set-prediction targets in the reference code.
"""

from __future__ import annotations

import numpy as np

COLOR_NAMES = ("gray", "blue", "brown", "yellow", "red", "green", "purple", "cyan")
COLOR_RGB = {
    "gray": (87, 87, 87),
    "blue": (42, 75, 215),
    "brown": (129, 74, 25),
    "yellow": (255, 238, 51),
    "red": (173, 35, 35),
    "green": (29, 105, 20),
    "purple": (129, 38, 192),
    "cyan": (41, 208, 208),
}
COLORS = np.array([COLOR_RGB[c] for c in COLOR_NAMES], dtype=np.float32) / 255.0  # [8, 3] in [0, 1]
COLORS_LINEAR = COLORS  # the generator hands c / 255 to Blender's (scene-linear) colour input: linear reflectance
MATERIAL_NAMES = ("rubber", "metal")
SHAPE_NAMES = ("cube", "sphere", "cylinder")
SIZE_NAMES = ("small", "large")
SIZE_VALUES = np.array([0.35, 0.7])

CAMERA_LOCATION = np.array([7.48113, -6.50764, 5.34367])  # un-jittered; aimed at the origin
FOCAL_LENGTH_MM = 35.0
SENSOR_WIDTH_MM = 32.0  # horizontal sensor fit (the image is wider than tall)
CAMERA_JITTER = 0.5
LIGHT_LOCATIONS = np.array(
    [
        [6.44671, -2.90517, 4.2584],  # key
        [-4.67112, -4.0136, 3.01122],  # fill
        [-1.1685, 2.64602, 5.81574],  # back
    ]
)
LIGHT_JITTER = np.array([1.0, 1.0, 1.0])  # key, fill, back

MIN_DIST = 0.25
MARGIN = 0.4
MAX_RETRIES = 50
MIN_PIXELS_PER_OBJECT = 200  # at the generator's default 320x240; scaled by pixel area for other image sizes
CLEVR_PIXELS = 320 * 240


def camera_rotation(location: np.ndarray = CAMERA_LOCATION) -> np.ndarray:
    """World -> camera rotation [3, 3] of a camera at ``location`` looking at the origin, z up.

    Rows are the camera's right, up and backward (Blender's +X, +Y, +Z camera axes; it looks along -Z).
    """
    forward = -location / np.linalg.norm(location)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return np.stack([right, up, -forward])


CAMERA_ROTATION = camera_rotation()  # the un-jittered camera's (the scene directions); a jittered one re-aims


def ground_directions() -> dict[str, np.ndarray]:
    """CLEVR's cardinal directions in the ground plane (scene_struct['directions']), unit [3] vectors."""
    right, up, back = CAMERA_ROTATION
    behind = -back * np.array([1.0, 1.0, 0.0])
    behind /= np.linalg.norm(behind)
    left = -right * np.array([1.0, 1.0, 0.0])
    left /= np.linalg.norm(left)
    z = np.array([0.0, 0.0, 1.0])
    dirs = {"behind": behind, "front": -behind, "left": left, "right": -left, "above": z, "below": -z}
    return {k: v + 0.0 for k, v in dirs.items()}  # + 0.0 turns -0.0 into 0.0


DIRECTIONS = ground_directions()
_MARGIN_DIRS = np.stack([DIRECTIONS[d][:2] for d in ("left", "right", "front", "behind")])  # [4, 2]


def object_radius(shape: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Radius (cube: half-size; cylinder: radius and half-height) of objects with 1-based shape and size codes:
    the size's value for every shape (see the module docstring on cubes)."""
    return SIZE_VALUES[np.asarray(size) - 1] + 0.0 * np.asarray(shape)


def sample_view(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Jittered camera location [3] and key / fill / back light locations [3, 3]."""
    camera = CAMERA_LOCATION + rng.uniform(-CAMERA_JITTER, CAMERA_JITTER, size=3)
    lights = LIGHT_LOCATIONS + rng.uniform(-1.0, 1.0, size=(3, 3)) * LIGHT_JITTER[:, None]
    return camera, lights


def sample_objects(
    rng: np.random.Generator,
    num_objects: int,
    min_dist: float = MIN_DIST,
    margin: float = MARGIN,
    max_retries: int = MAX_RETRIES,
) -> dict[str, np.ndarray]:
    """Place ``num_objects`` objects with CLEVR's rules.

    Returns arrays of length num_objects: x, y, z (= r; 3d_coords), r (radius / cube half-size),
    rotation (degrees), shape, size, material, color (1-based codes into the *_NAMES tuples).
    The ``max_retries`` position tries of one object are drawn at once and the first valid one is used.
    """
    n = num_objects
    for _ in range(10_000):
        xs, ys, rs, rot = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
        size, shape, color, material = (np.zeros(n, dtype=np.int64) for _ in range(4))
        ok_scene = True
        for i in range(n):
            size[i] = rng.integers(0, len(SIZE_VALUES))
            r = SIZE_VALUES[size[i]]
            cand = rng.uniform(-3.0, 3.0, size=(max_retries, 2))  # [T, 2] position tries
            dx = cand[:, None, 0] - xs[None, :i]  # [T, i]
            dy = cand[:, None, 1] - ys[None, :i]
            dist_ok = (np.sqrt(dx * dx + dy * dy) - r - rs[None, :i] >= min_dist).all(axis=1)  # [T]
            marg = dx[..., None] * _MARGIN_DIRS[:, 0] + dy[..., None] * _MARGIN_DIRS[:, 1]  # [T, i, 4]
            marg_ok = ~((marg > 0) & (marg < margin)).any(axis=(1, 2))  # [T]
            good = np.flatnonzero(dist_ok & marg_ok)
            if good.size == 0:  # CLEVR: after max_retries failures, resample all objects
                ok_scene = False
                break
            xs[i], ys[i] = cand[good[0]]
            shape[i] = rng.integers(0, len(SHAPE_NAMES))
            color[i] = rng.integers(0, len(COLOR_NAMES))
            material[i] = rng.integers(0, len(MATERIAL_NAMES))
            rot[i] = 360.0 * rng.random()
            rs[i] = r  # cubes too (module docstring)
        if ok_scene:
            return {
                "x": xs,
                "y": ys,
                "z": rs.copy(),
                "r": rs,
                "rotation": rot,
                "shape": shape + 1,
                "size": size + 1,
                "material": material + 1,
                "color": color + 1,
            }
    raise RuntimeError(f"could not place {num_objects} CLEVR objects")
