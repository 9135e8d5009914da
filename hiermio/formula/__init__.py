"""Stage 2, formula to design: R's expression syntax (``rsyntax``), lme4's formula and term algebra
(``terms``), the evaluation of variables and transforms (``variables``, ``splines``), the model
matrix (``modelmatrix``) and the design built from the data in memory (``design``) or learned in
passes over partitions (``streaming``).

May import: ``hiermio.core``, ``hiermio.data``.
"""
