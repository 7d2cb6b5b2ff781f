"""The world's per-pixel ground truth: surface normals and the class map, consistent with its geometry."""
import numpy as np
import pytest

from unio.data.records import frame_record
from unio.data.world import World
from unio.data.world.constants import MAX_DEPTH
from unio.data.world.source import WorldSource
from unio.data.world.surfaces import CLASS_NAMES, class_map, surface_depth, surface_normals

RES = 64


@pytest.fixture(scope="module")
def scenes():
    return [World("train", resolution=RES)[i] for i in range(12)]


def angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip((a * b).sum(-1), -1, 1)))


def fd_normals(points: np.ndarray, toward) -> np.ndarray:
    """Normals of a grid of 3-D points (H, W, 3) by central differences, turned to the side of `toward`."""
    du, dv = np.gradient(points, axis=1), np.gradient(points, axis=0)
    n = np.cross(dv, du)
    n *= np.sign((n * toward).sum(-1, keepdims=True) + 1e-12)
    return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)


def eroded(mask: np.ndarray) -> np.ndarray:
    """The pixels whose 4 neighbours are in the mask too (central differences stay on one surface)."""
    m = mask.copy()
    m[1:] &= mask[:-1]
    m[:-1] &= mask[1:]
    m[:, 1:] &= mask[:, :-1]
    m[:, :-1] &= mask[:, 1:]
    m[[0, -1]], m[:, [0, -1]] = False, False
    return m


def test_normals_are_unit_where_there_is_a_surface_and_zero_on_the_sky(scenes):
    for scene in scenes:
        normals, classes = surface_normals(scene.objects, RES), class_map(scene.objects, RES)
        norm = np.linalg.norm(normals, axis=-1)
        assert np.allclose(norm[classes != 0], 1, atol=1e-5)
        assert (norm[classes == 0] == 0).all() and (classes == 0).any()
        assert (normals[..., 2][classes > 1] >= -1e-6).all()            # every visible surface faces the camera


def test_the_ground_points_up_as_the_world_depth_map_says(scenes):
    """Back-projecting the world's own depth map (pinhole, focal = RES): the ground's finite-difference
    normals are the ground's normal, (0, 1, 0)."""
    scene = scenes[0]
    v, u = np.mgrid[0:RES, 0:RES].astype(np.float64) + 0.5
    z = scene.depth.astype(np.float64)
    points = np.stack([(u - RES / 2) * z / RES, -(v - 0.3 * RES) * z / RES, -z], -1)
    ground = eroded((class_map(scene.objects, RES) == 1) & (z < MAX_DEPTH))
    assert ground.sum() > 200
    assert angles(fd_normals(points, -points)[ground], np.array([0, 1, 0])).max() < 0.5
    assert np.allclose(surface_normals(scene.objects, RES)[ground], [0, 1, 0])


def shape_pixels(scenes, shape):
    for scene in scenes:
        normals, depth = surface_normals(scene.objects, RES), surface_depth(scene.objects, scene.depth, RES)
        for obj in scene.objects:
            if obj.shape == shape:
                yield scene, obj, normals, depth


@pytest.mark.parametrize("shape", ["cube", "sphere", "cone", "cylinder"])
def test_each_solid_normals_agree_with_the_finite_differences_of_its_surface_depth(scenes, shape):
    """Weak perspective as the renderer draws (x = (u - cx) s, y = -v s, z = -depth, s = depth / focal): the
    finite-difference normals of the solid's surface depth match the analytic ones where the surface is
    smooth (inside its visible mask, away from its rim and, for the cylinder, its top)."""
    errors = []
    for scene, obj, normals, depth in shape_pixels(World("train", resolution=RES).stream(0, 40), shape):
        s = obj.depth / RES
        v, u = np.mgrid[0:RES, 0:RES].astype(np.float64) + 0.5
        points = np.stack([u * s, -v * s, -depth.astype(np.float64)], -1)
        smooth = eroded(obj.mask) & (normals[..., 2] > 0.5) & (normals[..., 1] < 0.99)
        if shape == "cone":   # the apex and the half-pixel rows of the silhouette's rounding
            smooth &= eroded(eroded(obj.mask))
        errors.append(angles(fd_normals(points, [0, 0, 1])[smooth], normals[smooth]))
    errors = np.concatenate(errors)
    assert len(errors) > 100
    assert np.median(errors) < 1.0 and np.percentile(errors, 90) < 4.0, (np.median(errors), np.percentile(errors, 90))


def test_a_sphere_normals_point_away_from_its_centre(scenes):
    scene, obj, normals, _ = next(shape_pixels(World("train", resolution=RES).stream(0, 40), "sphere"))
    ys, xs = np.nonzero(obj.mask)
    left, right = xs.argmin(), xs.argmax()
    assert normals[ys[left], xs[left], 0] < -0.5 and normals[ys[right], xs[right], 0] > 0.5
    top = ys.argmin()
    assert normals[ys[top], xs[top], 1] > 0.5


def test_the_class_map_agrees_with_the_object_masks(scenes):
    for scene in scenes:
        classes = class_map(scene.objects, RES)
        covered = np.zeros((RES, RES), bool)
        for obj in scene.objects:
            assert (classes[obj.mask] == CLASS_NAMES.index(obj.shape)).all()
            covered |= obj.mask
        rows = np.arange(RES)[:, None].repeat(RES, 1)
        assert set(np.unique(classes[~covered])) <= {0, 1}
        assert ((classes[~covered] == 1) == (rows[~covered] + 0.5 > 0.3 * RES)).all()


def test_records_carry_the_maps_and_frames_map_them(scenes):
    record = WorldSource(RES).split("train")[0]
    assert record["class_names"] == list(CLASS_NAMES)
    normals, classes = np.asarray(record["normals"]), np.asarray(record["classes"])
    assert normals.shape == (RES, RES, 3) and classes.shape == (RES, RES)
    # a non-square record (the left half, 64x32) framed at 32 px: nearest resize, padding invalid
    half = {**record, "image": record["image"][:, :32], "normals": normals[:, :32], "classes": classes[:, :32]}
    framed, _ = frame_record(half, 32)
    fn, fc = np.asarray(framed["normals"]), np.asarray(framed["classes"])
    assert fn.shape == (32, 32, 3) and fc.shape == (32, 32)
    assert (fc[:, 16:] == -1).all() and (fn[:, 16:] == 0).all()
    assert np.array_equal(fc[:, :16], classes[1::2, 1:32:2]) and np.allclose(fn[:, :16], normals[1::2, 1:32:2])
