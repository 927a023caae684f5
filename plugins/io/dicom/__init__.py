"""DICOM (and NIfTI) export of reconstructed images, and their delivery to a PACS through a durable outbox.

Modules: :mod:`.geometry` (pixel positions, IPP/IOP, NIfTI affine), :mod:`.identity` (patient/study
identity, deterministic UIDs), :mod:`.series` (series kinds, units, integer encoding), :mod:`.writer`
(MR and PET datasets), :mod:`.run_folder` + :mod:`.export` (run folder → files), :mod:`.export_cli`.
"""
