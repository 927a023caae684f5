"""MR-based attenuation correction for PET-MR: Dixon water/fat separation, tissue classes, μ-map at 511 keV,
resampling from the MR to the PET image grid, hardware μ-map and truncation completion.

Modules (pure functions on numpy arrays / torch tensors, no I/O):

* :mod:`recon.petmr_ac.fat_model` - multi-peak fat spectrum, fat signal factors at given echo times.
* :mod:`recon.petmr_ac.dixon_two_point` - 2-point Dixon with phase-error correction (flexible echo times).
* :mod:`recon.petmr_ac.dixon_multi_echo` - 3-point / multi-echo Dixon with a B0 (field map) estimate.
* :mod:`recon.petmr_ac.swaps` - fat-water swap detection and correction, fat fraction.
* :mod:`recon.petmr_ac.tissue` - body outline, lung, fat, soft tissue, optional bone.
* :mod:`recon.petmr_ac.mumap` - μ coefficients at 511 keV, labels → μ, PET-resolution smoothing, hardware.
* :mod:`recon.petmr_ac.grid` - voxel grids with patient-coordinate affines, general affine resampling.
* :mod:`recon.petmr_ac.truncation` - completion of arms outside the MR field of view from NAC PET.
* :mod:`recon.petmr_ac.pipeline` - Dixon echoes → μ-map on the PET grid in one call.
"""
