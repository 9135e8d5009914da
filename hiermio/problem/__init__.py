"""Stage 3, the optimisation problem: the inner problem's interface (``inner``), the sufficient
statistics that make every evaluation free of n (``sufficient``), sign-constrained effects for tail
budgets (``tails``) and the selection problem with its units and budgets (``selection``).

May import: ``hiermio.core``, ``hiermio.data``, ``hiermio.formula``.
"""
