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
``adapter``   the model adapter: the CAM layer, the final linear layer and its input, the normalisation
``images``    channel reductions, min-max scaling, the Gaussian blur
``ranks``     average ranks and Kendall's tau (scipy)
``tables``    the plain-text table formatter
``directions`` which way each metric and score is better, read by every table and ranking
``lazy``      lazy packages with a complete ``dir()``
============  ==========================================================================================
"""
