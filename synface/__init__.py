"""SynFace Studio: synthetic faces with explicit identity, expression, illumination and pose.

A plain library (no Streamlit imports); the app and `python -m synface` are its two clients.
"""

__version__ = "0.1.0"
