"""Ventricular function from a short-axis SSFP cine stack: classical segmentation of the LV blood pool,
LV myocardium and RV blood pool, volume curves, ED/ES, EF, mass and the cross-check with flow."""
