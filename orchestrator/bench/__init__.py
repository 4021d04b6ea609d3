"""Benchmarks that ship with the product (`rlm bench`): OOLONG-Pairs (generator, scorer, contenders, the
offline scripted model), the machine's description, plots, and the runner of every part.

The platform's measuring programs stay in the source checkout's benchmarks/ (they need Docker and the
image, and are run from there by `make bench` / `rlm bench all`); what `rlm bench oolong` needs is here.
"""
