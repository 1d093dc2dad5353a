"""What a run leaves on disk: staged writes and safe model loading (`persistence`), run
directories (`rundir`), folder checks before any work (`folders`), and the machine a run's
numbers came from (`environment`).
"""
