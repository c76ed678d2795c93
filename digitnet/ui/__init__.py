"""The drawing app's user interface: one module per tab or component (Gradio lives here only).

``app.py`` wires these together; the rest of ``digitnet`` never imports Gradio.
"""
