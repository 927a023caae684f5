"""Shared numerical pieces: FFTs, linear operators, solvers, device helpers."""
