"""The Gradio tabs of the review studio, one module each; `app.py` only assembles them.

Each `build_*_tab(studio, ...)` lays out its tab, wires its events and returns a small frozen
dataclass of the components (and actions) that other tabs need, passed by name. These are the
only modules besides `app.py` that import gradio; what the events do lives in `medcap.app`.
"""
