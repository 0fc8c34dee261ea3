"""``python -m bench`` (``make bench``): every side-by-side benchmark, one after another.

CAT simulation against catsim and PyPI mirt, one live step, calibration against girth and
PyPI mirt, and rater measurement against PyPI mirt and a joint-ML floor. Each module also runs
alone: ``python -m bench.cat_sim``, ``bench.live_step``, ``bench.calibration``, ``bench.raters``.
"""

from bench import calibration, cat_sim, live_step, raters

status = (cat_sim.main([]) or live_step.main([]) or calibration.main([])
          or raters.main([]))
raise SystemExit(status)
