"""Stage 1, the rows: data read in partitions (``sources``: chunks, parquet, dask), the bundled data
sets (``datasets``) and the cluster-respecting splits of rows into folds, halves and resamples
(``splits``).

May import: ``hiermio.core``.
"""
