"""MR-based attenuation correction for PET-MR: Dixon water/fat separation, tissue classes, μ-map at 511 keV,
resampling from the MR to the PET image grid, hardware μ-map and truncation completion.

Modules (pure functions on numpy arrays / torch tensors, no I/O):

* :mod:`~recon.petmr_ac.fat_model` - multi-peak fat spectrum, fat signal factors at given echo times.
* :mod:`~recon.petmr_ac.dixon_common` - the separation result, phase-constrained fat fraction, linear solve.
* :mod:`~recon.petmr_ac.dixon_two_point` - 2-point Dixon with phase-error correction (flexible echo times).
* :mod:`~recon.petmr_ac.dixon_multi_echo` - 3-point / multi-echo Dixon with a B0 and R2* estimate;
  kernels in :mod:`~recon.petmr_ac.varpro_kernel` and :mod:`~recon.petmr_ac.r2star_kernel` (numba).
* :mod:`~recon.petmr_ac.field_map` - smooth choice among per-voxel field-map candidates (ICM).
* :mod:`~recon.petmr_ac.swaps` - fat-water swap detection and correction.
* :mod:`~recon.petmr_ac.dixon_coils` - per-echo coil images (FFT / GRAPPA) and phase-preserving combination.
* :mod:`~recon.petmr_ac.tissue` - body outline, lung, fat, soft tissue, optional bone.
* :mod:`~recon.petmr_ac.mumap` - μ coefficients at 511 keV, labels → μ, PET-resolution smoothing, hardware.
* :mod:`~recon.petmr_ac.grid` - voxel grids with patient-coordinate affines, general affine resampling.
* :mod:`~recon.petmr_ac.truncation` - completion of arms outside the MR field of view from NAC PET.
* :mod:`~recon.petmr_ac.nac` - a quick NAC reconstruction for the body outline.
* :mod:`~recon.petmr_ac.smoothing` - fast wide Gaussian smoothing, robust percentiles.
* :mod:`~recon.petmr_ac.pipeline` - Dixon echoes → μ-map on the PET grid in one call.
"""
