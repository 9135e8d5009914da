"""Stage 8, the paper's simulation study: its published numbers (``published``), its design
(``simulate``) and the rerun of every scenario (``reproduce``).

May import: every stage below.
"""
