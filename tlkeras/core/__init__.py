"""The vocabulary every layer shares, free of TensorFlow: the protocol config, the network spec, sweep
options, members and stack jobs, arm and strategy names, and the errors that reach a user as one line.
"""
