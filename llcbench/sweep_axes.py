"""The sweep's axes, defined once: the three knobs that move an LLC estimate by factors of two.

Step size, temperature and localisation, each a factor ≈ 4–10 either side of
its default. ``llcbench sweep`` runs their product by default, the scores
recognise a sweep by configs that differ only in them, and shared-chain grid
runs may differ only in them and the absolute nβ, γ they set. A leaf module:
it imports nothing, so every stage can import it.
"""

# Values as the command line gives them: ``make_config`` parses them as the config field's type.
DEFAULT_GRID = (("step_scale", ("0.05", "0.2", "0.8")), ("nbeta_scale", ("0.3", "1", "3")),
                ("gamma_scale", ("1e-4", "1e-3", "1e-2")))

SWEPT = tuple(name for name, _ in DEFAULT_GRID)  # the fields a sweep varies

# The fields in which the points of one shared chain tensor may differ: the swept scales, and the
# absolute nβ and γ, which the sampler also holds per row.
GRID_FIELDS = SWEPT + ("nbeta", "gamma")
