"""gradstudy: studies of vanishing and exploding gradients in RNNs (composition, search, orchestration)."""
