"""The command layer: the `tlkeras` command (`command`: fit, predict, evaluate), the pieces of an
experiment driver (`experiment`), every flag definition and validator they share (`flags`), and
one run lifecycle (`lifecycle`: exit codes, Ctrl-C, the resume line, workers started before
TensorFlow). With experiments/, the only place that touches `absl.flags`.
"""


def main(argv: list[str] | None = None) -> None:
    """The `tlkeras` console script."""
    from tlkeras.cli.command import main as command_main

    command_main(argv)
