"""``python -m bench`` (``make bench``): every side-by-side benchmark, one after another.

CAT simulation against catsim and PyPI mirt, one live step, and calibration against girth and
PyPI mirt. Each module also runs alone: ``python -m bench.cat_sim``, ``bench.live_step``,
``bench.calibration``.
"""

from bench import calibration, cat_sim, live_step

status = cat_sim.main([]) or live_step.main([]) or calibration.main([])
raise SystemExit(status)
