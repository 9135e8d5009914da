"""Stage 7, what hiermio is compared with: lme4 through R (``lme4``), the compared methods
(``methods``) and the comparison on held-out rows (``comparison``).

May import: the stages below (``core`` to ``workflow``).
"""
