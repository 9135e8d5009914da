"""Stage 0, what every stage uses: the errors (``exceptions``), the validated options of a fit and
their checks (``control``, lme4's ``lmerControl``) and the one way to run replicate work with a
progress bar (``parallel``).

May import: nothing of hiermio's outside this folder.
"""
