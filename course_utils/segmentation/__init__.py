"""Semantic segmentation, one module per slide of the lecture.

Convolutionalization (``convolutionalization``: a crop classifier slides over an image in one
pass) -> FCN-32s/16s/8s (``backbone``, ``fcn``; per-pixel predictions and class edges in
``semantic_maps``) -> up-sampling and transposed convolutions (``upsampling``,
``conv_arithmetic``) -> dilated convolutions and the context module (``receptive_field``) -> U-Net
(``unet``: the slide's parts, ``skips_off``, the paper's valid sizes).
May import ``core``, ``data``, ``engine``, ``metrics`` and ``viz``; never ``detection``.
"""
