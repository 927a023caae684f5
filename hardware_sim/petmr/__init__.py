"""Simultaneous PET-MR simulation: a Dixon exam and the PET list-mode of one torso in one frame of reference."""
