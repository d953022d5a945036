"""Command line: the Typer application (`app`), the option values turned into frozen configs
(`config`), and benchmark suites (`suites`). It parses and checks, calls a runner, and hands the
result to `output`; it computes nothing itself.

Layer 6, the top. May import every layer.
"""
