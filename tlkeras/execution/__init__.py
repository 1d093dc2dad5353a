"""Running a sweep: planning stack jobs, running one job, the pretraining cache, the handoff between
driver and worker (bytes only), the sweep itself on local worker processes or Ray, and `study`,
the one call a driver makes. Only the driver process writes a run directory.
"""
