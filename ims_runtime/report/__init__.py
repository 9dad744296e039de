"""Replay reports for people: a self-contained HTML page with a summary table, aligned timelines and an annotated
video of one run (``ims-runtime report``, ``replay --report``).

Optional extra ``report`` (matplotlib, PyAV, Jinja2). The vehicle runtime never imports this package: the commands
import it lazily. :mod:`ims_runtime.report.run_data` (numpy only) is also what the fleet replay's KPIs and regression
gate read runs with.
"""
