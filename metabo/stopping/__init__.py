"""Early stopping: models of learning curves pre-trained on past curves (``model``)."""
