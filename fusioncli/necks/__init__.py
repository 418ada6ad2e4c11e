"""Necks: whole decoders over a feature pyramid, built of fusion nodes (see :mod:`.base`).

One module per topology, each citing its canonical code: :mod:`.fpn` (``neck:fpn``,
``neck:pafpn``), :mod:`.bifpn` (``neck:bifpn``), :mod:`.dpt` (``neck:dpt``), :mod:`.unet`
(``neck:unet``), :mod:`.segformer` (``neck:segformer``). They are registered in
:data:`fusioncli.registry.NECKS`, built with ``create_fusion("neck:fpn", widths, C, node="aff")``
and analysed like any block; ``report.nodes`` holds one row per node.
"""
