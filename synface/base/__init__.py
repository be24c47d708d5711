"""Plumbing every layer may use: atomic files, the workspace, device choice, processes, exact arithmetic.

Nothing here imports another synface package.
"""
