"""Semantic segmentation, one module per slide of the lecture.

Convolutionalization and FCN (``fcn``) -> up-sampling and transposed convolutions
(``upsampling``, ``conv_arithmetic``) -> dilated convolutions (``receptive_field``). May import
``core``, ``data``, ``engine``, ``metrics`` and ``viz``; never ``detection``.
"""
