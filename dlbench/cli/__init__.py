"""Command line: the Typer application (`app`: errors, exit codes, the commands' registration),
the options of each training command as frozen dataclasses (`options`), the one table of
training commands (`commands`: options, config builder, runner, table, figures), the path every
training command runs (`execute`), the option values turned into frozen configs (`config`),
benchmark suites (`suites`: the file; `run`: `dlbench run`), and a module per other command
(`compare`, `page` for `dlbench report`, `listings`) and for the figures a run draws
(`figures`). The Python API (`api`: dlbench.cv(...) and the others, on the same path; `objects`:
Python objects where the command line takes names or paths) is re-exported by the package. It
parses and checks, calls a runner, and hands the result to `output`; it computes nothing itself.

Layer 6, the top. May import every layer.
"""
