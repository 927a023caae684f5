"""reconstream numerical cores: pure functions and operators on tensors (no streaming, no I/O).

Axis convention (the one convention of the project, followed everywhere)
-----------------------------------------------------------------------
* k-space:   ``(*other, coils, k2, k1, k0)``  — k0 readout, k1 phase encode, k2 partition/slice
* images:    ``(*other, z, y, x)``           — x along readout, y along phase encode
* ``*other`` leading axes carry e.g. ``cardiac_phase`` (cine) or ``velocity_encoding`` (phase contrast),
  outermost first.  2-D acquisitions keep a ``k2``/``z`` axis of length 1 where a function says so.
* PET list-mode data are event-major: one row per event.

Units are carried in names (``tr_ms``, ``venc_cm_per_s``, ``mu_per_cm`` ...).
"""
