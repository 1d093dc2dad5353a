"""Where to measure next: the methods that pick points (`methods`) and the suggestion a fitted
ensemble makes with one of them (`suggest`). numpy only; the command is `tlkeras suggest`."""
