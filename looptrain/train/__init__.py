"""Training: the compiled steps (`step`), the loop (`loop`), checkpoints and early stopping
(`checkpoint`), TensorBoard summaries (`summaries`) and the terminal display (`progress`)."""
