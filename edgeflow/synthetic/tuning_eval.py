"""The tuning set: the unseen set's kinds of pairs, made only from *training* material.

Why it exists (issue 14): the refinement stage of the default model has a few hand-set numbers
(window, iterations, normalisation). Choosing them on the unseen set would turn that set into a
training set. This set mirrors the unseen set's pairs one for one (same kinds of motion, the same
lighting change, noise and defocus, a fast object over a pan, layered scenes) but draws every
image from :func:`~edgeflow.synthetic.families.training_bank`'s split: the photos in
``TRAIN_PHOTOS`` and textures of ``TRAIN_FAMILIES``. It never contains a held-out photo or family
or the motorcycle pair. Parameters are chosen here; the unseen set is then measured once.

Deterministic: the same arrays on every call.
"""

from __future__ import annotations

import numpy as np

from edgeflow.synthetic.builtin_eval import EVAL_HEIGHT, EVAL_WIDTH, EvalPair, GlobalMotion, global_motion_pair
from edgeflow.synthetic.unseen_eval import _fast_object_pan, _noise_defocus, _require_skimage, _tone

TUNING_SEED = 52_301


def tuning_set() -> list[EvalPair]:
    """12 pairs of training material, one per kind of unseen pair (see the module doc)."""
    _require_skimage()
    from edgeflow.synthetic.families import TRAIN_PHOTOS, family_texture, training_bank
    from edgeflow.synthetic.generator import SyntheticFlowGenerator
    from edgeflow.synthetic.textures import load_skimage_images

    photos = {name: image for name, image in load_skimage_images() if name in TRAIN_PHOTOS}
    fractal = family_texture("fractal", np.random.default_rng([TUNING_SEED, 1]), 512)
    polygons = family_texture("polygons", np.random.default_rng([TUNING_SEED, 2]), 512)
    leaves = family_texture("dead_leaves", np.random.default_rng([TUNING_SEED, 3]), 512)
    pairs = [
        global_motion_pair(GlobalMotion("photo_translate_large", "astronaut", translation=(18.5, -11.25)),
                           photos["astronaut"]),
        global_motion_pair(GlobalMotion("photo_subpixel", "rocket", translation=(-0.6, 0.85)), photos["rocket"]),
        global_motion_pair(GlobalMotion("photo_similarity_small", "brick", translation=(1.5, -2.0), rotation=-2.5,
                                        zoom=0.97), photos["brick"]),
        global_motion_pair(GlobalMotion("fast_global_motion", "grass", translation=(-24.0, 5.5)), photos["grass"]),
    ]
    lit = global_motion_pair(GlobalMotion("lighting_change", "immunohistochemistry", translation=(3.5, 2.5)),
                             photos["immunohistochemistry"])
    pairs.append(lit._replace(frame2=_tone(lit.frame2, (0.8, 0.85, 0.95), 1.2, -10.0)))
    noisy = global_motion_pair(GlobalMotion("noise_defocus", "camera", translation=(2.25, -3.75)), photos["camera"])
    pairs.append(noisy._replace(frame1=_noise_defocus(noisy.frame1, 1.4, 6.0, 11),
                                frame2=_noise_defocus(noisy.frame2, 1.0, 6.0, 12)))
    pairs.append(_fast_object_pan(photos["coins"], leaves))
    pairs.append(global_motion_pair(GlobalMotion("texture_rotate", "fractal", translation=(-4.0, -1.5), rotation=-6.0,
                                                 zoom=0.95), fractal))
    pairs.append(global_motion_pair(GlobalMotion("texture_shear", "polygons", translation=(4.5, -3.0), shear=-0.05),
                                    polygons))
    generator = SyntheticFlowGenerator(EVAL_HEIGHT, EVAL_WIDTH, TUNING_SEED, max_objects=6, augment=False,
                                       textures=training_bank())
    for i in range(3):
        pairs.append(EvalPair(f"layered_{'abc'[i]}", *generator.sample(i)))
    return pairs
