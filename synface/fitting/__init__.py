"""Fitting the built-in head to photographs, and learning a face model from the fits.

Above `data` (it uses dlib's detector and landmarks) and below the clients; `synface.face.learned`
reads what `synface.fitting.build` writes.
"""
