"""CIFAR-100 fine -> coarse (super-class) map, used when a data layout carries no coarse labels."""

import numpy as np

# Index = fine label (alphabetical CIFAR-100 order), value = coarse label (20 super-classes of 5 fine classes).
# Verified during development: maps CIFAR-100_human.pt `clean_label` to `clean_coarse_label` (and
# `noisy_label` to `noisy_coarse_label`) for all 50,000 training images of the 2023 CIFAR-100N release.
CIFAR100_COARSE_OF_FINE: np.ndarray = np.array(
    [
        4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
        6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
        5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
        10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
        16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
    ],
    dtype=np.int64,
)
CIFAR100_COARSE_OF_FINE.setflags(write=False)
