"""Experiment drivers shared by chapters: each trains and evaluates a set of methods the same way,
so a notebook only chooses settings, plots and states results."""
