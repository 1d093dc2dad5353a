"""Process start-up and control, free of TensorFlow at import: the quiet TensorFlow import and thread
settings (`startup`), Ctrl-C as a request (`interrupts`), test-only faults at named points (`faults`).
"""
