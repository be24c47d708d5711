"""Training runs on disk: the registry (one folder per run) and the queue that starts them.

Runs take config dicts; nothing here imports the training code.
"""
