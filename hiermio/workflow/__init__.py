"""Stage 6, loops of fits: the path over budgets (``path``), cross-validation (``validation``),
stability selection (``stability``), the audit curve and the bootstrap's entry point (``audit``),
and the sums of folds and half-samples read in partitions (``subsets``).

May import: the stages below (``core`` to ``fitting``).
"""
