"""``python -m bench`` (``make bench``): the side-by-side CAT simulation benchmark."""

from bench.cat_sim import main

raise SystemExit(main())
