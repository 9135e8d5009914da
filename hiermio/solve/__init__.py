"""Stage 4, bounds and search: the certificate (``certificate``), the continuous relaxation
(``relaxation``), greedy and swap heuristics (``heuristics``), the branch-and-bound on the fixed
effects (``fixed_branching``) and SCIP's outer approximation (``oa``).

May import: the stages below (``core``, ``data``, ``formula``, ``problem``).
"""
