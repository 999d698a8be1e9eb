"""CausalSR: structural-causal-model super-resolution.

Public API (imported lazily so that `import causalsr` stays cheap)::

    import causalsr
    model = causalsr.load("x4")          # bundled weights, offline
    sr = model.upscale(pil_image)        # PIL.Image or numpy array
    report = model.analyze(pil_image)    # named degradation factors with uncertainty
    sr_clean = model.do(pil_image, noise=0)
"""
__version__ = "0.1.0"  # the one version definition: pyproject.toml reads it (dynamic version)


def load(name_or_path: str = "x4", **kwargs):
    """Load a bundled model ("x2", "x3", "x4") or an exported checkpoint path."""
    from causalsr.inference.api import load as _load

    return _load(name_or_path, **kwargs)


__all__ = ["load", "__version__"]
