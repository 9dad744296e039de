"""Fleet-scale replay (``ims-runtime fleet-replay``): many recordings through the same deterministic replay as
``ims-runtime replay``, one Ray task per recording, with fleet KPIs, a fleet page and a regression gate against an
earlier run.

Optional extra ``fleet`` (Ray). The vehicle runtime never imports this package. Only :mod:`ims_runtime.fleet.runner`
imports Ray; :mod:`~ims_runtime.fleet.job` is the plain-Python work of one recording (what a Ray task runs).
"""
