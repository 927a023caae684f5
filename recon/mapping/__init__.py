"""Parametric mapping: per-pixel relaxation fits (T1 MOLLI, T2, T2*) and phase-sensitive IR (PSIR).

Pure functions on torch tensors, batched over pixels; they run on the device of their inputs (CPU or
CUDA, same numbers).  Axis convention: images ``(n_images, y, x)`` or pixel batches ``(n_images, P)``,
times in ms.
"""
