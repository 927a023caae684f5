"""Phase-contrast flow cores: velocity maps, masks, background correction, unwrapping, vessels, flow.

Modules: ``velocity`` (phase / complex difference, v = VENC·Δφ/π), ``masks`` (noise and static-tissue
masks), ``background`` (polynomial offset fit), ``unwrap`` (aliasing correction), ``maxwell``
(concomitant-field phase), ``vessels`` (automatic regions of interest), ``flow`` (flow curves, beat
volumes, regurgitant fraction, Qp:Qs) and ``series`` (their composition for one slice).
"""
