"""The drawing app's self-contained UI pieces (Gradio components and their handlers)."""
