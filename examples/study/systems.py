"""The study's systems as plain numpy functions, for `tlkeras fit --simple=...:g` and for
checking a fit against the truth: `g` is the simple model (the Hill activation of order 1),
`hill2`, `hill3` and `phosphorylation` the study's "real" systems (PROTOCOL.md's parameters).

    tlkeras fit --simple=examples/study/systems.py:g --domain=0,20 --measurements=hill2.csv \\
        --inputs=x1,x2 --outputs=y1,y2 --out=models/hill2
"""

import numpy as np

from tlkeras.systems.mechanistic import SystemParams, SystemSpec, make_system

PARAMS = SystemParams()


def _system(name: str):
    function = make_system(SystemSpec.parse(name), PARAMS)
    return lambda x: np.asarray(function(np.asarray(x, np.float64)), np.float64)


g = _system("synthetic")
hill2 = _system("hill2")
hill3 = _system("hill3")
phosphorylation = _system("phosphorylation")
