"""evidence: everything known about a learner.

Test attempts and item responses (with time and hint use), and the services that act on them:
starting and answering attempts and their results (:mod:`evidence.attempts`), time limits and
extensions (:mod:`evidence.timing`); classes, enrolment and assignments (:mod:`evidence.classes`);
a teacher's review of one attempt (:mod:`evidence.review`); who may read a student's evidence
(:mod:`evidence.scope`), process indicators (:mod:`evidence.indicators`) and the portfolio
(:mod:`evidence.portfolio`); drafts, step logs (xAPI statements) and oral-defense rubric scores.
Columns holding personal data carry ``info={"personal": True}`` so that export and erasure can
be driven by that tag.

May import: storage, item_bank, cat_engine, calibration, sqlalchemy and the standard library;
never api.
"""
