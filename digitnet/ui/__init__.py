"""The drawing app's tabs, one module each (Gradio wiring only; the work is in ``digitnet``)."""
