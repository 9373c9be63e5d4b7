"""Executing an evaluation: config, runner, engine, run store, cache."""
