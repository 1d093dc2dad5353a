"""The `tlkeras` command: fit, predict, evaluate a lab's own system (a thin layer, as the drivers).

    tlkeras fit --simple=g.py:g --domain=0,20 --measurements=plate.csv --inputs=aTc,IPTG \\
        --outputs=gfp,rfp --out=models/plate1
    tlkeras predict --model=models/plate1 --grid=50 --out=pred.csv
    tlkeras evaluate --model=models/plate1 --measurements=test.csv

Arguments -> config -> one library call (`fit.fitting.run_fit`, `fit.ensemble.Ensemble`); no
training logic here. Each command is one module (`fit_command`, `model_commands`) with a
`define(values)` and a `run(values)`, and parses into its own `absl.flags.FlagValues`. Every bad
input is one line on stderr and exit status 2 before any work; Ctrl-C is 130; a failure mid-run 1
(`lifecycle`). Installed as the `tlkeras` console script (`tlkeras.cli:main`); also
`python -m tlkeras.cli`.
"""

from __future__ import annotations

import sys

from absl import flags

from tlkeras.cli import fit_command, model_commands, suggest_command
from tlkeras.cli.lifecycle import fail, stops_cleanly
from tlkeras.runtime import interrupts

USAGE = """usage: tlkeras <command> [--flags]

commands:
  fit       pretrain on your simple model, fine-tune on your measurements (CSV), write a model folder
  predict   ensemble mean and sd per output at points from a CSV or on a grid over the domain
  evaluate  L1, RMSE and 2-sd coverage of a model folder on measurements it has not seen
  suggest   where to measure next: n points (or rows of a candidates CSV) that should improve the model most

`tlkeras <command> --help` lists a command's flags."""

# name: (module with define/run, the flags it requires)
COMMANDS = {
    "fit": (fit_command, fit_command.REQUIRED),
    "predict": (model_commands.Predict, model_commands.Predict.REQUIRED),
    "evaluate": (model_commands.Evaluate, model_commands.Evaluate.REQUIRED),
    "suggest": (suggest_command, suggest_command.REQUIRED),
}
EXAMPLES = {
    "fit": fit_command.EXAMPLE,
    "predict": "tlkeras predict --model=models/plate1 --grid=50 --out=pred.csv",
    "evaluate": "tlkeras evaluate --model=models/plate1 --measurements=test.csv",
    "suggest": suggest_command.EXAMPLE,
}


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(USAGE)
        sys.exit(0 if len(argv) >= 2 else 2)
    command, rest = argv[1], argv[2:]
    if command not in COMMANDS:
        fail(f"unknown command {command!r}: expected {', '.join(COMMANDS)} (tlkeras --help)")
    handler, required = COMMANDS[command]
    values = flags.FlagValues()
    handler.define(values)
    if any(a in ("-h", "--help", "--helpfull") for a in rest):
        print(help_text(command, values, required))
        sys.exit(0)
    try:
        extra = values([f"tlkeras {command}", *rest])
    except flags.Error as error:
        message = str(error).splitlines()[0]
        missing = [name for name in values if values[name].value is None and name in required]
        if "must have a value other than None" in message and missing:
            message = f"--{missing[0]} is required (tlkeras {command} --help)"
        fail(message)
    if len(extra) > 1:
        fail(f"unexpected arguments {extra[1:]}; every setting is a --flag (tlkeras {command} --help)")
    # A fit stops at its next safe point (a second signal at once); predict and evaluate at once.
    interrupts.install(at_once=command != "fit")
    with stops_cleanly("; nothing was written"):
        handler.run(values)


def help_text(command: str, values: flags.FlagValues, required: tuple[str, ...]) -> str:
    """`tlkeras <command> --help`: an example, the required flags, then the others by concern."""
    def entry(name: str) -> str:
        flag = values[name]
        default = "" if name in required or flag.default is None else f" (default: {flag.serialize().split('=', 1)[-1]})"
        if isinstance(flag.default, bool):
            default = f" (default: {'on' if flag.default else 'off'}; --no{name} / --{name})"
        return f"  --{name}: {flag.help}{default}"

    titles = {"flags": "network, training, where it runs, transfer strategies, cache"}
    groups: dict[str, list[str]] = {}  # by concern: the command's own flags, then the shared ones
    for module, defined in sorted(values.flags_by_module_dict().items(),
                                  key=lambda item: item[0].rsplit(".", 1)[-1] in titles):
        title = titles.get(module.rsplit(".", 1)[-1], command)
        groups.setdefault(title, []).extend(flag.name for flag in defined if flag.name not in required)
    others = [f"{title}:\n" + "\n".join(entry(name) for name in sorted(names)) for title, names in groups.items()]
    return (f"usage: tlkeras {command} [--flags]\n\nexample:\n  {EXAMPLES[command]}\n\n"
            "required:\n" + "\n".join(entry(name) for name in required) + "\n\noptional, by concern:\n"
            + "\n".join(others))


if __name__ == "__main__":
    main()
