"""SSFP cine reconstruction cores: pure tensor functions and operators (torch, CPU or CUDA).

Axis convention (shared by every module here): k-space ``(*other, coils, k2, k1, k0)`` — for the 2-D
cine slices handled here ``(*other, coils, ky, kx)`` with ``*other = (cardiac_phase,)`` — and images
``(*other, y, x)``; coil images ``(*other, coils, y, x)``.  Tensors are created on the device of their inputs.
"""
