"""edge-facerec: on-device face detection and recognition for small ARM boards."""

__version__ = "0.1.0"
