"""A lab's own fit: plan it from a simple model and a measurement CSV (`fitting`), report it
(`report`), and use the model folder it writes as an ensemble (`ensemble`).
"""
