"""evidence: everything known about a learner.

Test attempts and item responses (with time and hint use) now; drafts, step logs (xAPI
statements) and oral-defense rubric scores later. Columns holding personal data carry
``info={"personal": True}`` so that export and erasure can be driven by that tag.

May import: storage, item_bank, sqlalchemy and the standard library.
"""
