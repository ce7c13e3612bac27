"""The teacher-forcing input of the AT model."""

import jax.numpy as jnp
import numpy as np

from attnlab.train.losses import shift_right


def test_teacher_forcing_input_is_bos_then_targets_shifted():
    targets = jnp.array([[7, 8, 2, 0]])
    np.testing.assert_array_equal(shift_right(targets), [[1, 7, 8, 2]])
