"""Neural capacitance (Jiang et al., 2022): the public namespace of the beta_eff toolkit.

Layering: this package sits *above* :mod:`ckptrank.measures` and re-exports, under stable public
names, the machinery that the ``beff`` measures are built on. That machinery lives in the
measures layer (``ckptrank/measures/_beff_line_graph.py``, ``_beff_probe.py``,
``_beff_backbone.py``) because a measure may not import a higher layer, and the machinery itself
shares the measures' input validation and :class:`~ckptrank.measures.DegenerateInputWarning`.
So ``capacitance`` imports ``measures`` and never the reverse (``tests/test_layering.py``).

Modules
-------
line_graph
    ``beta_eff`` of a layered network's line graph, exact and closed-form.
probe
    The neural-capacitance probe trained on frozen features (:func:`~ckptrank.capacitance.probe.train_probe`).
backbone
    The probe trained with the checkpoint's backbone fine-tuned
    (:func:`~ckptrank.capacitance.backbone.train_probe_backbone`).
"""
