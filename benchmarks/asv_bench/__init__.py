"""The asv suite of llcbench: speed (``time_*``, ``peakmem_*``) and accuracy (``track_*``) across commits.

Every benchmark runs with one torch thread, as ``llcbench run`` does by
default (λ̂ is bit-identical only at a fixed thread count, and on the
catalogue's small models one thread is the fastest).
"""

import torch

torch.set_num_threads(1)
