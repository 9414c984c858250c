"""The judge: output rules, anti-cheat checks, correctness, timing and ncu, run in child processes."""
