"""The systems a run learns, free of TensorFlow: input domains, the built-in mechanistic models
(`mechanistic`: Hill, synthetic, phosphorylation), a lab's own numpy functions (`user`) and its
measurement CSVs (`measurements`).
"""

from tlkeras.systems.mechanistic import (  # noqa: F401  (the built-in systems' API, as `tlkeras.systems`)
    SystemParams,
    SystemSpec,
    hill,
    make_system,
    phosphorylation,
    synthetic,
    system_function,
    system_name,
)
