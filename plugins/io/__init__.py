"""File formats: ISMRMRD HDF5 datasets and stream files, PETSIRD, PNG/side outputs."""
