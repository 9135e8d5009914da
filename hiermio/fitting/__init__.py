"""Stage 5, the fit: the stages of ``hiermio.fit`` (``api``), the fitted model (``results``), its
standard errors (``inference``), reports (``reports``), the cluster bootstrap (``bootstrap``), the
rules for new clusters (``newclusters``) and the scikit-learn estimator (``estimator``).

The results object never imports the fitting entry point: :func:`hiermio.fitting.api.make_fit`
hands it the function that fits (its ``fitter``), which the bootstrap calls on resamples.

May import: the stages below (``core`` to ``solve``).
"""
