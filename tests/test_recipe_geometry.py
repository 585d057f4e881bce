"""Each family's paper recipes crop and read out with the geometry of its official code: TransPose and
BTranspose with DarkPose's (``lib/utils/transforms.py`` of DarkPose, which both code bases copy: ``(w - 1)``
terms, a second affine to heatmap space), HRNet-derived code (SimpleBaseline, two-stage PRTR) with HRNet's."""

from __future__ import annotations

import numpy as np
import pytest

from poserepro.codecs.heatmap import heatmap_to_image
from poserepro.geometry import affine_points, get_affine_transform
from poserepro.recipes import list_recipes, load_recipe

OFFICIAL = {"transpose-": "dark", "btranspose-": "dark", "simplebaseline-": "hrnet", "prtr-": "hrnet",
            "tfpose-": "hrnet"}  # TFPose released no code: the HRNet/mmpose default it builds on


def _family(name: str) -> str:
    return next(p for p in sorted(OFFICIAL, key=len, reverse=True) if name.startswith(p))


@pytest.mark.parametrize("name", [r for r in list_recipes() if not r.endswith("smoke")])
def test_paper_recipes_use_their_official_geometry(name: str) -> None:
    assert load_recipe(name).data.affine == OFFICIAL[_family(name)], name


def test_dark_and_hrnet_geometry_by_hand() -> None:
    """A 200 x 266.7 px box (scale 1.0 x 1.333) centred at (300, 200) onto a 192 x 256 crop:
    HRNet maps the centre to (96, 128) and the 200 px width to 192 px; DarkPose maps the centre to the pixel
    centre (95.5, 127.5) and 199 px onto 191 px."""
    c, s = np.array([300.0, 200.0]), np.array([1.0, 256 / 192])
    hr = get_affine_transform(c, s, 0.0, (192, 256), convention="hrnet")
    dk = get_affine_transform(c, s, 0.0, (192, 256), convention="dark")
    np.testing.assert_allclose(affine_points(np.array([[300.0, 200.0], [400.0, 200.0]]), hr),
                               [[96.0, 128.0], [96.0 + 192 / 2, 128.0]], atol=1e-9)
    np.testing.assert_allclose(affine_points(np.array([[300.0, 200.0], [399.5, 200.0]]), dk),
                               [[95.5, 127.5], [95.5 + 191 / 2, 127.5]], atol=1e-9)


def test_tp_h_read_out_lands_on_the_dark_geometry() -> None:
    """Fed one heatmap peak at the heatmap's pixel centre ((48 - 1) / 2, (64 - 1) / 2), the TransPose-H recipe's
    read-out returns the box centre, as the official TransPose code's does; HRNet's geometry would land
    (0.5, 0.5) heatmap px = 2 input px away."""
    rec = load_recipe("transpose-h-a6")
    c, s = np.array([[300.0, 200.0]]), np.array([[1.0, 256 / 192]])
    hw = tuple(rec.data.heatmap_size)
    coords = np.array([[[(hw[0] - 1) / 2, (hw[1] - 1) / 2]]])
    got = heatmap_to_image(coords, c, s, hw, convention=rec.data.affine)
    np.testing.assert_allclose(got[0, 0], [300.0, 200.0], atol=1e-6)
    off = heatmap_to_image(coords, c, s, hw, convention="hrnet")[0, 0] - [300.0, 200.0]
    assert np.all(np.abs(off) > 1.0)
