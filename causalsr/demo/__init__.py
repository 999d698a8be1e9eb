"""The web demo (`causalsr demo`): upload, diagnosis, intervention sliders, before/after.

`core` holds the page's logic as plain functions over numpy arrays (no gradio),
`app` lays out the gradio page over them; gradio is the optional extra `demo`.
"""
