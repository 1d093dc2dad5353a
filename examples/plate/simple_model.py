"""A lab's simple model g of a two-inducer, two-reporter circuit, and (for this example only) the
"true" system that generated the measurements in plate.csv.

tlkeras calls a model with numpy inputs [n, 2] (aTc in ng/mL, IPTG in uM) and expects outputs
[n, 2] (GFP and RFP fluorescence, arbitrary units), in the units of the measurement CSV.
"""

import numpy as np

# The guess: first-order (non-cooperative) activation with textbook constants.
GFP_MAX, RFP_MAX = 40_000.0, 15_000.0  # a.u.
K_ATC, K_IPTG = 20.0, 200.0  # half-activation constants (ng/mL, uM)


def g(x: np.ndarray) -> np.ndarray:
    """The simple model: y_i = max_i * a_i / (1 + a_1 + a_2), a = x / K."""
    a = x[:, 0] / K_ATC
    b = x[:, 1] / K_IPTG
    denominator = 1.0 + a + b
    return np.stack([GFP_MAX * a / denominator, RFP_MAX * b / denominator], axis=1)


def truth(x: np.ndarray) -> np.ndarray:
    """The real circuit (unknown to the lab): cooperative (Hill n = 2), other constants."""
    a = (x[:, 0] / 25.0) ** 2
    b = (x[:, 1] / 180.0) ** 2
    denominator = 1.0 + a + b
    return np.stack([38_000.0 * a / denominator, 16_000.0 * b / denominator], axis=1)
