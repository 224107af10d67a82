# SPDX-License-Identifier: GPL-3.0-or-later
"""Deep-JSCC baseline (Bourtsoulatze, Kurka, Gündüz, "Deep joint source-channel coding for wireless image
transmission", IEEE TCCN 2019), the papers' learned comparison system, in its own torch package.

Layer rule (DESIGN §2): this package may import torch and the core ``infercom``; nothing in ``infercom`` imports
it. Modules:

* :mod:`deepjscc.model` -- the convolutional autoencoder, the bandwidth presets (exact channel uses ``k``),
  puncturing, power normalisation, checkpoints, and the numpy-facing :class:`~deepjscc.model.DeepJSCCCodec`;
* :mod:`deepjscc.train` -- ``infercom train-deepjscc`` (AWGN at a training SNR, MSE, Adam);
* :mod:`deepjscc.flops` -- the exact encoder FLOP count, layer by layer, from the model itself.

Nothing is imported here, so ``import deepjscc`` stays cheap (the submodules import torch).
"""
