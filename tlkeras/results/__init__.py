"""What a run reports: scores on the evaluation points, curves, statistics (scipy), the headline,
report tables and figures, and TensorBoard event files.
"""
