"""digitnet: train, evaluate and serve handwritten-digit classifiers (MNIST).

Importing this package does nothing but define names: no downloads, no
argument parsing, no model loading.
"""

__version__ = "0.1.0"
