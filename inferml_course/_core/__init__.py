"""What every family shares (private to the package; families import from here, never from each other's
private modules).

============  ==========================================================================================
module        contents
============  ==========================================================================================
``checks``    argument checks: images, numbers, choices, scores, labels, probabilities, logits
``targets``   targets ``None | int | sequence | (N,)`` checked against the model's output (N, K)
``batching``  the one ``batch_size`` rule (``"auto"``, an int or ``None``) and :func:`batches`
``modes``     the mode policy: warn on training-mode layers, save and restore every flag, MC dropout
``hooks``     hook context managers (capture outputs, guided / deconvnet ReLU rules), removed on errors
``adapter``   the model adapter: the CAM layer, the final linear layer and its input, the normalisation,
              the head after the features (``head_after_features``, ``dropout_head``)
``perturb``   the perturb-and-score engine: the first pass with the checks, chunked scoring, the one chunk
              rule, ``OUTPUTS``, and the dtype rule of every function that runs a model on images
``paths``     path and noise sampling: gradients summed along a path (IG, Blur IG, SmoothGrad), SmoothGrad's
              noise (SmoothGrad, VOICE)
``layouts``   a layer's output (channels-first, channels-last, tokens) as feature maps (N, K, h, w)
``grads``     gradients of one output for many stacked cotangents (vectorised or looped)
``images``    channel reductions, min-max scaling, the Gaussian blur
``ranks``     average ranks, Kendall's tau-b and the percentile bootstrap (scipy, or checked against it)
``tables``    the plain-text table formatter (widths, number format, best / runner-up marks)
``directions`` which way each metric and score is better (one registry), read by every table,
              ranking and widget; no name means two directions
``registry``  method registries: each method's facts declared beside it, every table a read-only view
``lazy``      lazy packages with a complete ``dir()``
============  ==========================================================================================
"""
