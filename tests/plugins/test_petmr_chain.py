"""The shipped ``petmr`` chain end to end: Dixon acquisitions then PET list-mode in one session."""

from __future__ import annotations

import itertools

import ismrmrd
import numpy as np

from hardware_sim.mr.config import MRExamConfig
from hardware_sim.mr.exam import simulate_exam
from plugins.pet.items import PETMuMap
from plugins.runtime.chain import load_chain
from plugins.runtime.pipeline import Pipeline
from plugins.runtime.plugin import ChainContext
from recon.tof.geometry import scanner_by_name
from recon.tof.listmode import ListModeBatch


def _uniform_listmode(n_events: int, rng: np.random.Generator) -> ListModeBatch:
    """Random LORs through a uniform cylinder on the small scanner (only the stream mechanics matter here)."""
    scanner = scanner_by_name("small")
    ring = rng.integers(0, scanner.n_rings, (2, n_events))
    offset = rng.integers(scanner.n_crystals_per_ring // 4, 3 * scanner.n_crystals_per_ring // 4, n_events)
    a = rng.integers(0, scanner.n_crystals_per_ring, n_events)
    c1 = scanner.crystal_id(ring[0], a)
    c2 = scanner.crystal_id(ring[1], (a + offset) % scanner.n_crystals_per_ring)
    tof = rng.integers(-3, 4, n_events).astype(np.int16)
    return ListModeBatch(
        c1,
        c2,
        tof,
        np.ones(n_events, bool),
        np.sort(rng.integers(0, 10_000, n_events)).astype(np.uint32),
        "small",
        0,
        True,
    )


def test_petmr_chain_emits_dixon_images_mumap_and_pet_image() -> None:
    exam = simulate_exam(
        MRExamConfig(
            protocol="dixon", n_slices=2, n_coils=8, n_echoes=3, n_readout=64, n_phase_encodes=48, seed=2
        )
    )
    chain = load_chain(
        "petmr",
        [
            "mumap.scanner=small",
            "mumap.voxel_size_mm=8.0",
            "mumap.truncation_completion=false",
            "osem.voxel_size_mm=8.0",
            "osem.n_iterations=1",
            "osem.n_subsets=2",
            "osem.scatter=false",
            "osem.max_sensitivity_pairs=100000",
        ],
    )
    context = ChainContext("petmr", header=exam.header)
    pet = _uniform_listmode(20_000, np.random.default_rng(0))
    outputs = list(Pipeline(chain, context).run(itertools.chain(exam.items(), [pet])))
    series = {int(o.image_series_index) for o in outputs if isinstance(o, ismrmrd.Image)}
    assert {10, 11, 12, 13, 20}.issubset(series)  # water, fat, FF, B0, μ-map
    assert 100 in series  # the attenuation-corrected PET image
    assert not any(isinstance(o, PETMuMap) for o in outputs)  # consumed by the PET reconstruction


def test_petmr_chain_with_truncation_completion_from_nac() -> None:
    exam = simulate_exam(
        MRExamConfig(
            protocol="dixon", n_slices=2, n_coils=8, n_echoes=3, n_readout=64, n_phase_encodes=48, seed=2
        )
    )
    chain = load_chain(
        "petmr",
        [
            "mumap.scanner=small",
            "mumap.voxel_size_mm=8.0",
            "mumap.nac_voxel_size_mm=10.0",
            "mumap.nac_max_events=20000",
            "osem.voxel_size_mm=8.0",
            "osem.n_iterations=1",
            "osem.n_subsets=2",
            "osem.scatter=false",
            "osem.max_sensitivity_pairs=100000",
        ],
    )
    pet = _uniform_listmode(20_000, np.random.default_rng(1))
    outputs = list(
        Pipeline(chain, ChainContext("petmr", header=exam.header)).run(itertools.chain(exam.items(), [pet]))
    )
    mu_images = [o for o in outputs if isinstance(o, ismrmrd.Image) and int(o.image_series_index) == 20]
    assert mu_images
    meta = ismrmrd.Meta.deserialize(mu_images[0].attribute_string)
    assert int(meta["TruncationCompletedVoxels"]) > 0  # the NAC outline reaches beyond the 2-slice MR slab
    assert any(isinstance(o, ismrmrd.Image) and int(o.image_series_index) == 100 for o in outputs)
