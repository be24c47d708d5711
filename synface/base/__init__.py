"""Plumbing every layer may use: atomic files, the workspace, safe user-given names, device choice, processes,
exact arithmetic.

Nothing here imports another synface package.
"""
