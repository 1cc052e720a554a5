"""Mixture search: many short ordinary plan runs on sampled mixtures, a regression from weights to objective.

``space`` (the mixtures a stage may take and how they are sampled), ``proxies`` (one proxy = one ordinary
run folder, launched as ``syllabus run``), ``fit`` (the regression and its recommended optimum), ``search``
(the whole search, resumable), ``output`` (``search.md``, plots, the rewritten plan). See docs/mix-search.md.
"""
